/** Handle value data formats: validation and canonical storage form. Pure, no I/O. */
import { InvalidHandleError, parseHandle } from './handle.js';

/** Formats a client may send. `hex` is input only: it is stored as `base64`. */
export const INPUT_FORMATS = ['string', 'base64', 'hex', 'admin', 'vlist', 'site', 'key'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];
export type StoredFormat = Exclude<InputFormat, 'hex'>;

export interface ValueData {
  format: StoredFormat;
  value: unknown;
}

/** Thrown for any value that cannot be stored; maps to responseCode 202. */
export class InvalidValueError extends Error {
  override readonly name = 'InvalidValueError';
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^(?:[0-9A-Fa-f]{2})*$/;
const ADMIN_PERMISSIONS = /^[01]{12}$/;

function fail(where: string, message: string): never {
  throw new InvalidValueError(`${where}: ${message}`);
}

function checkHandleRef(where: string, value: unknown): string {
  if (typeof value !== 'string') fail(where, 'handle must be a string');
  try {
    return parseHandle(value).handle;
  } catch (err) {
    if (err instanceof InvalidHandleError) fail(where, `handle ${JSON.stringify(value)} is invalid: ${err.message}`);
    throw err;
  }
}

function checkIndexRef(where: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 2147483647) {
    fail(where, 'index must be an integer from 0 to 2147483647');
  }
  return value as number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks one value's data and returns its stored form with its size in bytes (the decoded
 * size for binary formats, the JSON size for structured ones).
 */
export function normaliseData(where: string, format: string, value: unknown): { data: ValueData; bytes: number } {
  switch (format) {
    case 'string':
    case 'key': {
      if (typeof value !== 'string') fail(where, `${format} data must be a string`);
      return { data: { format, value }, bytes: Buffer.byteLength(value, 'utf8') };
    }
    case 'base64': {
      if (typeof value !== 'string' || !BASE64.test(value)) fail(where, 'base64 data is not valid base64');
      return { data: { format, value }, bytes: Buffer.from(value, 'base64').length };
    }
    case 'hex': {
      if (typeof value !== 'string' || !HEX.test(value)) fail(where, 'hex data must be an even number of hex digits');
      const bytes = Buffer.from(value, 'hex');
      return { data: { format: 'base64', value: bytes.toString('base64') }, bytes: bytes.length };
    }
    case 'admin': {
      if (!isPlainObject(value)) fail(where, 'admin data must be an object {handle, index, permissions}');
      const handle = checkHandleRef(where, value.handle);
      const index = checkIndexRef(where, value.index);
      if (typeof value.permissions !== 'string' || !ADMIN_PERMISSIONS.test(value.permissions)) {
        fail(where, 'admin permissions must be 12 characters of 0 and 1');
      }
      const canonical = { handle, index, permissions: value.permissions };
      return { data: { format, value: canonical }, bytes: Buffer.byteLength(JSON.stringify(canonical)) };
    }
    case 'vlist': {
      if (!Array.isArray(value)) fail(where, 'vlist data must be an array of {handle, index}');
      const list = value.map((item, i) => {
        if (!isPlainObject(item)) fail(where, `vlist item ${i} must be an object {handle, index}`);
        return { handle: checkHandleRef(`${where} vlist item ${i}`, item.handle), index: checkIndexRef(`${where} vlist item ${i}`, item.index) };
      });
      return { data: { format, value: list }, bytes: Buffer.byteLength(JSON.stringify(list)) };
    }
    case 'site': {
      if (!isPlainObject(value)) fail(where, 'site data must be an object');
      return { data: { format, value }, bytes: Buffer.byteLength(JSON.stringify(value)) };
    }
    default:
      return fail(where, `unknown data format ${JSON.stringify(format)}; use one of ${INPUT_FORMATS.join(', ')}`);
  }
}
