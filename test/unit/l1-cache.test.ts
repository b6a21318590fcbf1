import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, foundEntry, missingEntry, ownFrame } from '../../src/resolver/cache-entry.js';
import { L1Cache } from '../../src/resolver/l1-cache.js';

const later = () => Date.now() + 60_000;
const value = (index: number, data: string, permissions?: string) => ({
  index,
  type: 'URL',
  data: { format: 'string' as const, value: data },
  ttl: 60,
  timestamp: '2026-11-29T00:00:00.000Z',
  ...(permissions ? { permissions } : {}),
});
const record = (handle: string, version = 1) => ({ handle, version, values: [value(1, `https://example.com/${handle}`)] });

describe('L1 cache', () => {
  it('stores and returns entries until they expire', () => {
    const l1 = new L1Cache(1 << 20);
    l1.set(foundEntry(record('88.118.8/A'), later()), l1.begin());
    expect(l1.get('88.118.8/A')?.found).toBe(true);
    l1.set(foundEntry(record('88.118.8/OLD'), Date.now() - 1), l1.begin());
    expect(l1.get('88.118.8/OLD')).toBeUndefined();
  });

  it('does not let a load that started before an invalidation store what it read', () => {
    const l1 = new L1Cache(1 << 20);
    const since = l1.begin();
    l1.invalidate(['88.118.8/RACE']); // a write commits while the load is in flight
    l1.set(foundEntry(record('88.118.8/RACE'), later()), since);
    expect(l1.get('88.118.8/RACE')).toBeUndefined();
    l1.set(foundEntry(record('88.118.8/RACE', 2), later()), l1.begin());
    expect(l1.get('88.118.8/RACE')).toMatchObject({ found: true, version: 2 });
  });

  it('clear() drops everything and refuses loads that began before it', () => {
    const l1 = new L1Cache(1 << 20);
    l1.set(foundEntry(record('88.118.8/X'), later()), l1.begin());
    const since = l1.begin();
    l1.clear();
    expect(l1.get('88.118.8/X')).toBeUndefined();
    l1.set(foundEntry(record('88.118.8/Y'), later()), since);
    expect(l1.get('88.118.8/Y')).toBeUndefined();
  });

  it('stays within its byte bound and keeps the most recent', () => {
    const l1 = new L1Cache(20_000);
    for (let i = 0; i < 1000; i += 1) l1.set(foundEntry(record(`88.118.8/${i}`), later()), l1.begin());
    expect(l1.stats.bytes).toBeLessThanOrEqual(20_000);
    expect(l1.stats.entries).toBeGreaterThan(0);
    expect(l1.stats.entries).toBeLessThan(1000);
    expect(l1.get('88.118.8/999')).toBeDefined();
  });

  it('is off at size 0', () => {
    const l1 = new L1Cache(0);
    l1.set(foundEntry(record('88.118.8/A'), later()), l1.begin());
    expect(l1.enabled).toBe(false);
    expect(l1.get('88.118.8/A')).toBeUndefined();
  });
});

describe('cache entries', () => {
  it('hold the public view as ready bytes and every value for owners', () => {
    const entry = foundEntry({ handle: '88.118.8/P', version: 3, values: [value(1, 'https://a'), value(2, 'secret', '1100')] }, later());
    expect(JSON.parse(entry.json.toString())).toEqual({ responseCode: 1, handle: '88.118.8/P', values: [value(1, 'https://a')] });
    expect(entry.hasPrivate).toBe(true);
    expect(entry.values()).toHaveLength(2);
  });

  it('answer responseCode 200 with no values when every value is private', () => {
    const entry = foundEntry({ handle: '88.118.8/Q', version: 1, values: [value(1, 'secret', '1100')] }, later());
    expect(JSON.parse(entry.json.toString())).toEqual({ responseCode: 200, handle: '88.118.8/Q', values: [] });
  });

  it('survive the Redis frame round trip, found and missing', () => {
    const expiresAt = later();
    const found = foundEntry({ handle: '88.118.8/F', version: 7, values: [value(1, 'https://a'), value(2, '机密', '1100')] }, expiresAt);
    const back = decodeFrame('88.118.8/F', encodeFrame(found));
    expect(back).toMatchObject({ found: true, version: 7, expiresAt, hasPrivate: true });
    expect(back!.json.equals(found.json)).toBe(true);
    expect(back!.proto.equals(found.proto)).toBe(true);
    expect(back!.found && back!.values()).toEqual(found.values());
    const missing = missingEntry('88.118.8/NONE', expiresAt);
    const gone = decodeFrame('88.118.8/NONE', encodeFrame(missing));
    expect(gone).toMatchObject({ found: false, expiresAt });
    expect(JSON.parse(gone!.json.toString())).toMatchObject({ responseCode: 100, handle: '88.118.8/NONE' });
  });

  it('keep only their own bytes alive, not a pool slab or a Redis reply they were cut from', () => {
    // One live slice of Node's 8 KiB Buffer pool keeps the whole slab alive: an entry's bytes are its own.
    const own = (b: Buffer) => b.byteOffset === 0 && b.buffer.byteLength <= 4096;
    const found = foundEntry({ handle: '88.118.8/O', version: 2, values: [value(1, 'https://a'), value(2, 'secret', '1100')] }, later());
    expect(own(found.json)).toBe(true);
    expect(own(found.proto)).toBe(true);
    expect(own(missingEntry('88.118.8/NONE', later()).json)).toBe(true);
    // A frame inside a larger reply buffer (what a Redis client hands back) is copied out of it.
    const frame = encodeFrame(found);
    const reply = Buffer.alloc(64 * 1024);
    frame.copy(reply, 1000);
    const back = decodeFrame('88.118.8/O', ownFrame(reply.subarray(1000, 1000 + frame.length)))!;
    expect(back.json.equals(found.json)).toBe(true);
    expect(back.json.buffer.byteLength).toBe(frame.length);
    expect(back.proto.buffer).toBe(back.json.buffer);
    // A frame of its own is used as it is.
    expect(decodeFrame('88.118.8/O', frame)!.json.buffer).toBe(frame.buffer);
  });

  it('treat a frame they cannot read as a miss', () => {
    expect(decodeFrame('88.118.8/X', Buffer.from('not a frame'))).toBeUndefined();
    const frame = encodeFrame(missingEntry('88.118.8/X', later()));
    expect(decodeFrame('88.118.8/X', frame.subarray(0, frame.length - 3))).toBeUndefined();
  });
});
