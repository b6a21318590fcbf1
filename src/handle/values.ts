/** The Handle value model: normalising a submitted record. Pure, no I/O. */
import { InvalidValueError, normaliseData, type ValueData } from './formats.js';

export const HS_ADMIN = 'HS_ADMIN';
export const HS_ADMIN_INDEX = 100;
/** Handle's default admin permissions: everything but adding/removing naming authorities. */
export const DEFAULT_ADMIN_PERMISSIONS = '011111110011';
/** adminRead, adminWrite, publicRead, publicWrite. */
export const DEFAULT_PERMISSIONS = '1110';
const VALUE_PERMISSIONS = /^[01]{4}$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export interface HandleValue {
  index: number;
  type: string;
  data: ValueData;
  ttl: number;
  timestamp: string;
  /** Omitted means DEFAULT_PERMISSIONS. */
  permissions?: string;
}

/** What a client sends; the server sets `timestamp` and ignores any it is given. */
export interface ValueInput {
  index: number;
  type: string;
  data: { format: string; value: unknown };
  ttl?: number;
  permissions?: string;
  timestamp?: string;
}

export interface ValueLimits {
  maxValues: number;
  maxValueBytes: number;
  defaultTtl: number;
}

export interface NormaliseOptions {
  limits: ValueLimits;
  /** ISO time given to every new or changed value. */
  now: string;
  /** The handle's prefix: the default HS_ADMIN names `0.NA/<prefix>`. */
  prefix: string;
  /** The values stored before this write: unchanged values keep their timestamp. */
  previous?: readonly HandleValue[];
}

/** JSON with object keys sorted, so equal data compares equal whatever order its keys came in. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function sameContent(a: HandleValue, b: HandleValue): boolean {
  return (
    a.index === b.index &&
    a.type === b.type &&
    a.ttl === b.ttl &&
    (a.permissions ?? DEFAULT_PERMISSIONS) === (b.permissions ?? DEFAULT_PERMISSIONS) &&
    stableJson(a.data) === stableJson(b.data)
  );
}

/**
 * Validates a submitted value list and returns the record to store: canonical data, server
 * timestamps, default TTLs, and an HS_ADMIN value when the record has none. Throws
 * InvalidValueError naming the offending value.
 */
export function normaliseValues(input: readonly ValueInput[], options: NormaliseOptions): HandleValue[] {
  const { limits, now, prefix, previous = [] } = options;
  if (input.length === 0) throw new InvalidValueError('a record needs at least one value');
  const seen = new Set<number>();
  const values: HandleValue[] = [];
  for (const item of input) {
    const where = `value at index ${item.index}`;
    if (!Number.isInteger(item.index) || item.index < 1 || item.index > 2147483647) {
      throw new InvalidValueError(`value index ${item.index} must be an integer from 1 to 2147483647`);
    }
    if (seen.has(item.index)) throw new InvalidValueError(`index ${item.index} is used by more than one value`);
    seen.add(item.index);
    if (typeof item.type !== 'string' || item.type.length === 0) throw new InvalidValueError(`${where}: type is empty`);
    if (CONTROL.test(item.type)) throw new InvalidValueError(`${where}: type contains a control character`);
    if (Buffer.byteLength(item.type) > 255) throw new InvalidValueError(`${where}: type is longer than 255 bytes`);
    const { data, bytes } = normaliseData(where, item.data.format, item.data.value);
    if (bytes > limits.maxValueBytes) {
      throw new InvalidValueError(`${where}: data is ${bytes} bytes; at most ${limits.maxValueBytes} are allowed`);
    }
    const ttl = item.ttl ?? limits.defaultTtl;
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2147483647) {
      throw new InvalidValueError(`${where}: ttl must be an integer from 0 to 2147483647`);
    }
    if (item.permissions !== undefined && !VALUE_PERMISSIONS.test(item.permissions)) {
      throw new InvalidValueError(`${where}: permissions must be 4 characters of 0 and 1 (adminRead adminWrite publicRead publicWrite)`);
    }
    const value: HandleValue = { index: item.index, type: item.type, data, ttl, timestamp: now };
    if (item.permissions !== undefined) value.permissions = item.permissions;
    values.push(value);
  }
  if (!values.some((v) => v.type.toUpperCase() === HS_ADMIN)) {
    let index = HS_ADMIN_INDEX;
    while (seen.has(index)) index += 1;
    values.push({
      index,
      type: HS_ADMIN,
      data: { format: 'admin', value: { handle: `0.NA/${prefix}`, index: 200, permissions: DEFAULT_ADMIN_PERMISSIONS } },
      ttl: limits.defaultTtl,
      timestamp: now,
    });
  }
  if (values.length > limits.maxValues) {
    throw new InvalidValueError(`a record may hold at most ${limits.maxValues} values; got ${values.length}`);
  }
  const before = new Map(previous.map((v) => [v.index, v]));
  for (const value of values) {
    const old = before.get(value.index);
    if (old && sameContent(old, value)) value.timestamp = old.timestamp;
  }
  return values.sort((a, b) => a.index - b.index);
}

/** Whether anonymous callers and other tenants may see this value. */
export function isPublicRead(value: HandleValue): boolean {
  return (value.permissions ?? DEFAULT_PERMISSIONS)[2] === '1';
}

/** The smallest TTL of a record, or undefined for an empty one. */
export function minTtl(values: readonly HandleValue[]): number | undefined {
  let min: number | undefined;
  for (const v of values) if (min === undefined || v.ttl < min) min = v.ttl;
  return min;
}

/** A stored identifier: its normalised handle, values and version (the ETag). */
export interface HandleRecord {
  handle: string;
  version: number;
  values: HandleValue[];
}
