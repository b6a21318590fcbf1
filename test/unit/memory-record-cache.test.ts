import { describe, expect, it } from 'vitest';
import { MemoryRecordCache } from '../../src/resolver/memory-record-cache.js';

const record = (handle: string, version = 1) => ({ handle, version, values: [] });

describe('in-process record cache', () => {
  it('stores and returns records', async () => {
    const cache = new MemoryRecordCache(1 << 20);
    const miss = await cache.get('88.118.8/A');
    expect(miss.hit).toBe(false);
    await cache.set('88.118.8/A', record('88.118.8/A'), 60, miss.hit ? undefined : miss.token);
    expect(await cache.get('88.118.8/A')).toEqual({ hit: true, record: record('88.118.8/A') });
  });

  it('does not let a load that started before an invalidation store its stale record', async () => {
    const cache = new MemoryRecordCache(1 << 20);
    const lookup = await cache.get('88.118.8/RACE');
    await cache.invalidate(['88.118.8/RACE']); // a write commits while the load is in flight
    await cache.set('88.118.8/RACE', record('88.118.8/RACE'), 60, lookup.hit ? undefined : lookup.token);
    expect((await cache.get('88.118.8/RACE')).hit).toBe(false);
    const next = await cache.get('88.118.8/RACE');
    await cache.set('88.118.8/RACE', record('88.118.8/RACE', 2), 60, next.hit ? undefined : next.token);
    expect(await cache.get('88.118.8/RACE')).toEqual({ hit: true, record: record('88.118.8/RACE', 2) });
  });

  it('never stores with a TTL of 0 and drops entries on invalidation', async () => {
    const cache = new MemoryRecordCache(1 << 20);
    const lookup = await cache.get('88.118.8/Z');
    await cache.set('88.118.8/Z', record('88.118.8/Z'), 0, lookup.hit ? undefined : lookup.token);
    expect((await cache.get('88.118.8/Z')).hit).toBe(false);
    const again = await cache.get('88.118.8/Z');
    await cache.set('88.118.8/Z', record('88.118.8/Z'), 60, again.hit ? undefined : again.token);
    await cache.invalidate(['88.118.8/Z']);
    expect((await cache.get('88.118.8/Z')).hit).toBe(false);
  });

  it('stays within its byte bound', async () => {
    const cache = new MemoryRecordCache(10_000);
    for (let i = 0; i < 1000; i += 1) {
      const lookup = await cache.get(`88.118.8/${i}`);
      await cache.set(`88.118.8/${i}`, record(`88.118.8/${i}`), 60, lookup.hit ? undefined : lookup.token);
    }
    let held = 0;
    for (let i = 0; i < 1000; i += 1) if ((await cache.get(`88.118.8/${i}`)).hit) held += 1;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(1000);
    expect((await cache.get('88.118.8/999')).hit).toBe(true); // the most recent survive
  });
});
