/**
 * Single flight in the resolver: concurrent misses share one load, but a miss that comes after an
 * invalidation of its handle never shares a load that began before it (that load may bring back
 * what the write replaced). The record source here is a stand-in whose reads the test releases by
 * hand, to order them against the invalidation; real Postgres and Redis are in the integration
 * tests (resolution.test.ts counts queries for 100 concurrent misses there).
 */
import { describe, expect, it } from 'vitest';
import { parseHandle, type Handle } from '../../src/handle/handle.js';
import type { HandleRecord } from '../../src/handle/values.js';
import { ResolverCache } from '../../src/resolver/resolver-cache.js';
import { ResolverService, type RecordSource } from '../../src/resolver/service.js';

const H = '88.118.8/SF-1';

/** A source whose reads wait until released, answering with the record as it is at release. */
class HeldSource implements RecordSource {
  reads = 0;
  current: HandleRecord | undefined;
  private held: Array<() => void> = [];

  private wait<T>(answer: () => T): Promise<T> {
    this.reads += 1;
    return new Promise((resolve) => this.held.push(() => resolve(answer())));
  }

  find(): Promise<HandleRecord | undefined> {
    const snapshot = this.current;
    return this.wait(() => snapshot);
  }

  findMany(handles: readonly Handle[]): Promise<Map<string, HandleRecord>> {
    const snapshot = this.current;
    return this.wait(() => new Map(snapshot ? handles.filter((h) => h.handle === snapshot.handle).map((h) => [h.handle, snapshot] as const) : []));
  }

  /** Releases the oldest read. */
  release(): void {
    this.held.shift()?.();
  }
}

const record = (version: number, url: string): HandleRecord => ({
  handle: H,
  version,
  values: [{ index: 1, type: 'URL', data: { format: 'string', value: url }, ttl: 60, timestamp: '2026-11-30T00:00:00.000Z' }],
});

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('resolver single flight', () => {
  it('shares one load between concurrent misses', async () => {
    const source = new HeldSource();
    source.current = record(1, 'https://example.com/v1');
    const resolver = new ResolverService(source, new ResolverCache(1 << 20, undefined), { maxTtlSeconds: 60, negativeTtlSeconds: 5 });
    const handle = parseHandle(H);
    const answers = Array.from({ length: 10 }, () => resolver.lookup(handle));
    await flush();
    expect(source.reads).toBe(1);
    source.release();
    const entries = await Promise.all(answers);
    expect(entries.map((e) => (e.found ? e.version : 0))).toEqual(Array(10).fill(1));
  });

  it('does not hand a miss after an invalidation the load that began before it', async () => {
    const source = new HeldSource();
    const cache = new ResolverCache(1 << 20, undefined);
    const resolver = new ResolverService(source, cache, { maxTtlSeconds: 60, negativeTtlSeconds: 5 });
    const handle = parseHandle(H);
    // A resolve of a handle not yet registered starts its load...
    const before = resolver.lookup(handle);
    await flush();
    expect(source.reads).toBe(1);
    // ...a registration commits and invalidates while that load is still reading...
    source.current = record(1, 'https://example.com/new');
    await cache.invalidate([H]);
    // ...and a resolve made after the registration's answer must see the new record.
    const after = resolver.lookup(handle);
    await flush();
    expect(source.reads).toBe(2);
    source.release(); // the old read answers: not found
    source.release();
    const [old, fresh] = await Promise.all([before, after]);
    expect(old.found).toBe(false); // asked before the write: either answer is right
    expect(fresh.found).toBe(true);
    // The old load stored nothing, the new one did; and a third miss is an L1 hit on it.
    const third = resolver.lookup(handle);
    expect(third instanceof Promise).toBe(false);
    expect((third as { found: boolean }).found).toBe(true);
    expect(source.reads).toBe(2);
  });
});
