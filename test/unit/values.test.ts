import { describe, expect, it } from 'vitest';
import { InvalidValueError, normaliseData } from '../../src/handle/formats.js';
import { isPublicRead, minTtl, normaliseValues, type HandleValue, type ValueInput } from '../../src/handle/values.js';

const limits = { maxValues: 5, maxValueBytes: 100, defaultTtl: 86400 };
const now = '2026-11-29T00:00:00.000Z';
const opts = { limits, now, prefix: '88.118.8' };
const str = (index: number, value: string, extra: Partial<ValueInput> = {}): ValueInput => ({ index, type: 'URL', data: { format: 'string', value }, ...extra });
const reason = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidValueError);
    return (err as Error).message;
  }
  throw new Error('accepted');
};

describe('value formats', () => {
  it('stores string, key and site data as given', () => {
    expect(normaliseData('v', 'string', '字符串').data).toEqual({ format: 'string', value: '字符串' });
    expect(normaliseData('v', 'string', '字符串').bytes).toBe(9);
    expect(normaliseData('v', 'key', 'AAAA').data.format).toBe('key');
    expect(normaliseData('v', 'site', { version: 1, servers: [] }).data.value).toEqual({ version: 1, servers: [] });
  });

  it('validates base64 and measures its decoded size', () => {
    expect(normaliseData('v', 'base64', 'aGVsbG8=').bytes).toBe(5);
    expect(reason(() => normaliseData('v', 'base64', 'not base64!'))).toMatch(/base64/);
    expect(reason(() => normaliseData('v', 'base64', 'aGVsbG8'))).toMatch(/base64/);
  });

  it('turns hex input into base64', () => {
    expect(normaliseData('v', 'hex', '68656c6c6f')).toEqual({ data: { format: 'base64', value: 'aGVsbG8=' }, bytes: 5 });
    expect(reason(() => normaliseData('v', 'hex', 'abc'))).toMatch(/hex/);
    expect(reason(() => normaliseData('v', 'hex', 'zz'))).toMatch(/hex/);
  });

  it('checks admin values: handle, index and 12 permission bits', () => {
    const ok = normaliseData('v', 'admin', { handle: '0.na/88.118.8', index: 200, permissions: '011111110011' });
    expect(ok.data.value).toEqual({ handle: '0.NA/88.118.8', index: 200, permissions: '011111110011' });
    expect(reason(() => normaliseData('v', 'admin', { handle: 'nohandle', index: 200, permissions: '011111110011' }))).toMatch(/handle/);
    expect(reason(() => normaliseData('v', 'admin', { handle: '0.NA/X', index: -1, permissions: '011111110011' }))).toMatch(/index/);
    expect(reason(() => normaliseData('v', 'admin', { handle: '0.NA/X', index: 1, permissions: '0111' }))).toMatch(/12 characters/);
    expect(reason(() => normaliseData('v', 'admin', 'x'))).toMatch(/object/);
  });

  it('checks vlist items', () => {
    expect(normaliseData('v', 'vlist', [{ handle: '0.NA/X', index: 300 }]).data.value).toEqual([{ handle: '0.NA/X', index: 300 }]);
    expect(reason(() => normaliseData('v', 'vlist', [{ handle: 'bad', index: 300 }]))).toMatch(/vlist item 0/);
    expect(reason(() => normaliseData('v', 'vlist', {}))).toMatch(/array/);
  });

  it('refuses unknown formats and wrong value types', () => {
    expect(reason(() => normaliseData('v', 'xml', 'x'))).toMatch(/unknown data format/);
    expect(reason(() => normaliseData('v', 'string', 5))).toMatch(/string/);
  });
});

describe('normaliseValues', () => {
  it('sets server timestamps and default TTLs, and adds HS_ADMIN at index 100', () => {
    const values = normaliseValues([str(1, 'https://e.com', { timestamp: '1999-01-01T00:00:00Z' })], opts);
    expect(values).toHaveLength(2);
    expect(values[0]).toEqual({ index: 1, type: 'URL', data: { format: 'string', value: 'https://e.com' }, ttl: 86400, timestamp: now });
    expect(values[1]).toMatchObject({ index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { handle: '0.NA/88.118.8', index: 200 } } });
  });

  it('keeps a client HS_ADMIN and never adds a second one', () => {
    const admin: ValueInput = { index: 7, type: 'hs_admin', data: { format: 'admin', value: { handle: '0.NA/88.118.8', index: 300, permissions: '011111110011' } } };
    const values = normaliseValues([str(1, 'x'), admin], opts);
    expect(values.map((v) => v.index)).toEqual([1, 7]);
  });

  it('puts the default HS_ADMIN at the next free index when 100 is taken', () => {
    const values = normaliseValues([str(100, 'x'), str(101, 'y')], opts);
    expect(values.find((v) => v.type === 'HS_ADMIN')?.index).toBe(102);
  });

  it('refuses duplicate indexes, empty records and too many values', () => {
    expect(reason(() => normaliseValues([str(1, 'a'), str(1, 'b')], opts))).toMatch(/index 1 is used by more than one/);
    expect(reason(() => normaliseValues([], opts))).toMatch(/at least one/);
    // 5 values + HS_ADMIN = 6 > 5.
    expect(reason(() => normaliseValues([1, 2, 3, 4, 5].map((i) => str(i, 'x')), opts))).toMatch(/at most 5 values/);
  });

  it('refuses oversized data, naming the value', () => {
    expect(normaliseValues([str(3, 'x'.repeat(100))], opts)[0]!.data.value).toHaveLength(100);
    expect(reason(() => normaliseValues([str(3, 'x'.repeat(101))], opts))).toMatch(/value at index 3: data is 101 bytes; at most 100/);
  });

  it('refuses bad types, TTLs and permissions', () => {
    expect(reason(() => normaliseValues([{ ...str(1, 'x'), type: '' }], opts))).toMatch(/type is empty/);
    expect(reason(() => normaliseValues([{ ...str(1, 'x'), type: 'A\nB' }], opts))).toMatch(/control/);
    expect(reason(() => normaliseValues([str(1, 'x', { ttl: -1 })], opts))).toMatch(/ttl/);
    expect(reason(() => normaliseValues([str(1, 'x', { permissions: '11' })], opts))).toMatch(/permissions/);
    expect(reason(() => normaliseValues([str(0, 'x')], opts))).toMatch(/index 0/);
  });

  it('keeps the timestamp of values that did not change', () => {
    const old: HandleValue[] = normaliseValues([str(1, 'same'), str(2, 'old')], { ...opts, now: '2020-01-01T00:00:00.000Z' });
    const next = normaliseValues([str(1, 'same'), str(2, 'new')], { ...opts, previous: old });
    expect(next.find((v) => v.index === 1)!.timestamp).toBe('2020-01-01T00:00:00.000Z');
    expect(next.find((v) => v.index === 2)!.timestamp).toBe(now);
    expect(next.find((v) => v.index === 100)!.timestamp).toBe('2020-01-01T00:00:00.000Z');
  });

  it('reads permissions and TTLs', () => {
    const [priv, pub] = normaliseValues([str(1, 'a', { permissions: '1100', ttl: 5 }), str(2, 'b', { ttl: 0 })], opts);
    expect(isPublicRead(priv!)).toBe(false);
    expect(isPublicRead(pub!)).toBe(true);
    expect(minTtl([priv!, pub!])).toBe(0);
    expect(minTtl([])).toBeUndefined();
  });

  it('treats data with the same content in another key order as unchanged', () => {
    const site = { version: 1, servers: [{ id: 1, address: '10.0.0.1' }] };
    const old = normaliseValues([{ index: 6, type: 'HS_SITE', data: { format: 'site', value: site } }], { ...opts, now: '2020-01-01T00:00:00.000Z' });
    const reordered = { servers: [{ address: '10.0.0.1', id: 1 }], version: 1 };
    const next = normaliseValues([{ index: 6, type: 'HS_SITE', data: { format: 'site', value: reordered } }], { ...opts, previous: old });
    expect(next[0]!.timestamp).toBe('2020-01-01T00:00:00.000Z');
    const changed = normaliseValues([{ index: 6, type: 'HS_SITE', data: { format: 'site', value: { ...site, version: 2 } } }], { ...opts, previous: old });
    expect(changed[0]!.timestamp).toBe(now);
  });
});
