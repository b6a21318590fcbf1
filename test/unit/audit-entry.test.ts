/** The audit chain's pure parts: canonical digests, the chain hash, anchors as `snode audit head` prints them. */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, chainHash, chainHashOf, digestOf, entryFields, GENESIS, parseAnchor, type StoredEntry } from '../../src/audit/entry.js';

/** canonicalJson as it was first written (entries already stored were digested by it). */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(',')}}`;
}

const entry: StoredEntry = {
  id: '17', atMicros: '1764400000000000', actorKey: 'k', actorRole: 'admin', action: 'key.create', target: 't',
  requestId: 'r', clientIp: '127.0.0.1', beforeDigest: null, afterDigest: 'ab', detail: '{"a": 1}',
};

describe('audit entries', () => {
  it('digest equal data equally, whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] })).toBe('{"a":[{"d":2}],"b":1}');
    expect(digestOf({ x: 1, y: 2 })).toBe(digestOf({ y: 2, x: 1 }));
    expect(digestOf(null)).toBeNull();
  });

  it('digest exactly as the first implementation did, for any JSON', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => canonicalJson(value) === reference(value)), { numRuns: 2000 });
    fc.assert(fc.property(fc.object(), (value) => canonicalJson(value) === reference(value)), { numRuns: 500 });
  });

  it('hash SHA-256(previous || JSON [seq, id, time, actor, role, action, target, request id, ip, digests, detail]), as entries sealed before were', () => {
    const previous = createHash('sha256').update('x').digest();
    const body = JSON.stringify(['7', ...entryFields({ ...entry, detail: 'ünïcode \u2028 "q"', requestId: null })]);
    const expected = createHash('sha256').update(previous).update(body, 'utf8').digest();
    expect(chainHash(previous, '7', { ...entry, detail: 'ünïcode \u2028 "q"', requestId: null }).equals(expected)).toBe(true);
    expect(chainHashOf(previous, '7', entryFields({ ...entry, detail: 'ünïcode \u2028 "q"', requestId: null })).equals(expected)).toBe(true);
  });

  it('hash entries of every size alike, one after another (the working buffer is reused)', () => {
    const previous = createHash('sha256').update('y').digest();
    // Around the 64 KiB working buffer: ASCII, 3-byte and 4-byte UTF-8, and past it.
    for (const detail of ['a'.repeat(21_000), '€'.repeat(21_800), '😀'.repeat(10_000), 'b'.repeat(70_000), 'short']) {
      const body = JSON.stringify(['9', ...entryFields({ ...entry, detail })]);
      const expected = createHash('sha256').update(previous).update(body, 'utf8').digest();
      expect(chainHashOf(previous, '9', entryFields({ ...entry, detail })).equals(expected)).toBe(true);
    }
  });

  it('chain each hash to the previous one and to the position', () => {
    const first = chainHash(GENESIS, '1', entry);
    expect(first).toHaveLength(32);
    expect(chainHash(GENESIS, '2', entry).equals(first)).toBe(false);
    expect(chainHash(first, '1', entry).equals(first)).toBe(false);
    expect(chainHash(GENESIS, '1', { ...entry, target: 'u' }).equals(first)).toBe(false);
    expect(chainHash(GENESIS, '1', { ...entry }).equals(first)).toBe(true);
  });

  it('read an anchor as <seq>:<64 hex digits>, and nothing else', () => {
    const hash = 'AB'.repeat(32);
    expect(parseAnchor(`12:${hash}`)).toEqual({ seq: '12', hash: hash.toLowerCase() });
    for (const bad of ['12', `0:${hash}`, `-1:${hash}`, `12:${hash.slice(2)}`, `12:${hash}0`, `1.5:${hash}`, ` 12:${hash}`, `12:${'g'.repeat(64)}`]) {
      expect(parseAnchor(bad), bad).toBeUndefined();
    }
  });
});
