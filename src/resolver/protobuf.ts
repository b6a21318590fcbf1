/**
 * The protobuf form of resolution answers (proto/resolution.proto), for clients that send
 * `Accept: application/x-protobuf`. Messages mirror the JSON bodies, so both encodings are
 * built from the same ResolutionBody and decode back to it.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { StoredFormat } from '../handle/formats.js';
import type { HandleValue } from '../handle/values.js';

export const PROTOBUF_TYPE = 'application/x-protobuf';

/** A resolution answer in its JSON shape: what `/api/handles/{handle}` sends as JSON. */
export interface ResolutionBody {
  responseCode: number;
  handle: string;
  values?: HandleValue[];
  message?: string;
  code?: string;
}

// Loaded once at module load; src/resolver/ (vitest) and dist/resolver/ (production) are
// both two levels below the repo root, where proto/ lives.
const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/resolution.proto', import.meta.url)));
const ValueType = root.lookupType('snode.resolution.v1.HandleValue');
const ResolutionType = root.lookupType('snode.resolution.v1.Resolution');
const BatchRequestType = root.lookupType('snode.resolution.v1.ResolveBatchRequest');
const BatchResponseType = root.lookupType('snode.resolution.v1.ResolveBatchResponse');

/** The plain-object shape protobufjs encodes (camelCase field names). */
interface ValueMessage {
  index: number;
  type: string;
  format: string;
  text?: string;
  json?: string;
  ttl: number;
  timestamp: string;
  permissions?: string;
}

interface ResolutionMessage {
  responseCode: number;
  handle: string;
  values: ValueMessage[];
  message?: string;
  code?: string;
}

/** Formats whose value is text, sent in `text`; the rest are structured and sent as JSON. */
const TEXT_FORMATS: ReadonlySet<string> = new Set<StoredFormat>(['string', 'base64']);
const STORED_FORMATS: ReadonlySet<string> = new Set<StoredFormat>(['string', 'base64', 'admin', 'vlist', 'site', 'key']);
const TAG_RESULTS = 0x0a; // field 1 (results), wire type 2 (length-delimited)

function toValueMessage(value: HandleValue): ValueMessage {
  const { format, value: data } = value.data;
  const message: ValueMessage = {
    index: value.index,
    type: value.type,
    format,
    ttl: value.ttl,
    timestamp: value.timestamp,
  };
  if (TEXT_FORMATS.has(format)) {
    if (typeof data !== 'string') throw new Error(`value at index ${value.index}: ${format} data must be a string`);
    message.text = data;
  } else {
    const json = JSON.stringify(data);
    if (json === undefined) throw new Error(`value at index ${value.index}: ${format} data cannot be written as JSON`);
    message.json = json;
  }
  if (value.permissions !== undefined) message.permissions = value.permissions;
  return message;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The exact protobuf bytes of one `Resolution`. */
export function encodeResolution(body: ResolutionBody): Buffer {
  const message: ResolutionMessage = {
    responseCode: body.responseCode,
    handle: body.handle,
    values: body.values ? body.values.map(toValueMessage) : [],
  };
  if (body.message !== undefined) message.message = body.message;
  if (body.code !== undefined) message.code = body.code;
  return asBuffer(ResolutionType.encode(message).finish());
}

function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n >>>= 7;
    length += 1;
  }
  return length;
}

/**
 * A `ResolveBatchResponse` made of already-encoded `Resolution` messages, framed as its
 * repeated field 1 without decoding them: cached per-handle bytes are sent as they are. `alloc`
 * gives the buffer the message is written into.
 */
export function encodeBatch(parts: readonly Uint8Array[], alloc: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  let total = 0;
  for (const part of parts) total += 1 + varintLength(part.length) + part.length;
  const out = alloc(total);
  let pos = 0;
  for (const part of parts) {
    out[pos++] = TAG_RESULTS;
    let n = part.length;
    while (n >= 0x80) {
      out[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[pos++] = n;
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function decodeWith<T>(type: protobuf.Type, name: string, bytes: Uint8Array): T {
  try {
    return type.decode(bytes) as unknown as T;
  } catch (err) {
    throw new Error(`malformed ${name}: ${describe(err)}`);
  }
}

/** The handles of a protobuf `ResolveBatchRequest`; throws an Error for bytes that are not one. */
export function decodeBatchRequest(bytes: Uint8Array): string[] {
  // Copied: an empty list is protobufjs's shared frozen default array.
  return [...decodeWith<{ handles: string[] }>(BatchRequestType, 'ResolveBatchRequest', bytes).handles];
}

// Decoded messages inherit defaults from their prototype, and those differ by kind of field
// ('' for oneof members, null for proto3 `optional`), so presence is read from what the
// decoder set on the message itself: the oneof discriminator, or an own property.
interface DecodedValue {
  index: number;
  type: string;
  format: string;
  /** The oneof discriminator: the name of the member that is set. */
  data?: 'text' | 'json';
  text: string;
  json: string;
  ttl: number;
  timestamp: string;
  permissions?: string;
}

interface DecodedResolution {
  responseCode: number;
  handle: string;
  values: DecodedValue[];
  message?: string;
  code?: string;
}

const has = (message: object, field: string): boolean => Object.prototype.hasOwnProperty.call(message, field);

function fromValueMessage(message: DecodedValue): HandleValue {
  const where = `value at index ${message.index}`;
  if (!STORED_FORMATS.has(message.format)) throw new Error(`${where}: unknown data format ${JSON.stringify(message.format)}`);
  const format = message.format as StoredFormat;
  let data: unknown;
  // The oneof member present decides, not the format, so either member decodes for any format.
  if (message.data === 'text') {
    data = message.text;
  } else if (message.data === 'json') {
    try {
      data = JSON.parse(message.json) as unknown;
    } catch (err) {
      throw new Error(`${where}: data is not valid JSON: ${describe(err)}`);
    }
  } else {
    throw new Error(`${where}: has no data`);
  }
  const value: HandleValue = { index: message.index, type: message.type, data: { format, value: data }, ttl: message.ttl, timestamp: message.timestamp };
  if (has(message, 'permissions')) value.permissions = message.permissions!;
  return value;
}

/**
 * Response codes whose JSON body always has `values`, possibly empty (1 success, 200 values
 * not found). protobuf cannot send an empty list, so an empty list is restored for these and
 * left out for the others.
 */
const CODES_WITH_VALUES: ReadonlySet<number> = new Set([1, 200]);

function fromResolutionMessage(message: DecodedResolution): ResolutionBody {
  const body: ResolutionBody = { responseCode: message.responseCode, handle: message.handle };
  const values = message.values;
  if (values.length > 0 || CODES_WITH_VALUES.has(message.responseCode)) body.values = values.map(fromValueMessage);
  if (has(message, 'message')) body.message = message.message!;
  if (has(message, 'code')) body.code = message.code!;
  return body;
}

/** One `Resolution` back in its JSON shape (values present for response codes 1 and 200). */
export function decodeResolution(bytes: Uint8Array): ResolutionBody {
  return fromResolutionMessage(decodeWith<DecodedResolution>(ResolutionType, 'Resolution', bytes));
}

/** The results of a `ResolveBatchResponse`, in order, each in its JSON shape. */
export function decodeBatchResponse(bytes: Uint8Array): ResolutionBody[] {
  const message = decodeWith<{ results: DecodedResolution[] }>(BatchResponseType, 'ResolveBatchResponse', bytes);
  return message.results.map(fromResolutionMessage);
}

/** The reflected message types, for tests and tools that need to build messages directly. */
export const protobufTypes = {
  HandleValue: ValueType,
  Resolution: ResolutionType,
  ResolveBatchRequest: BatchRequestType,
  ResolveBatchResponse: BatchResponseType,
} as const;
