/**
 * What the caches hold for a handle: the ready-to-send answer bytes of its public view (JSON and
 * protobuf), or a not-found answer. The same entry is framed into one Redis value, so an L2 hit
 * costs a decode of a few length fields, never a JSON serialisation.
 */
import { isPublicRead, type HandleRecord, type HandleValue } from '../handle/values.js';
import { ResponseCode } from '../infra/errors.js';
import { entityTag } from './http-cache.js';
import { encodeResolution, type ResolutionBody } from './protobuf.js';

interface EntryBase {
  readonly handle: string;
  /** The handle's prefix (what resolution is counted under and ownership is checked against). */
  readonly prefix: string;
  /** Epoch milliseconds after which the entry is stale; 0: not cacheable (TTL 0 or bypass). */
  readonly expiresAt: number;
  /** Answer body of the public view. */
  readonly json: Buffer;
  /** The same answer in protobuf: encoded on first use unless the entry was made with it. */
  readonly proto: Buffer;
  /** The entity tag of the JSON (`"3"`) or protobuf (`"3-pb"`) representation. */
  etag(proto: boolean): string;
}

export interface FoundEntry extends EntryBase {
  readonly found: true;
  readonly version: number;
  /** Whether some values deny public read (owners then see more than `json` holds). */
  readonly hasPrivate: boolean;
  /** Every value, public or not; parsed on first use (filters, owners). */
  values(): HandleValue[];
}

export interface MissingEntry extends EntryBase {
  readonly found: false;
}

export type CacheEntry = FoundEntry | MissingEntry;

const FRAME_VERSION = 1;
const KIND_FOUND = 1;
const KIND_MISSING = 2;
const HEADER_BYTES = 1 + 1 + 1 + 8 + 8;

/**
 * One string per prefix for all entries: a batch compares its entries' prefixes and counts them
 * by prefix, and the same string makes both a pointer comparison. Bounded (a node serves a few
 * thousand prefixes); when full it starts again, which only costs sharing.
 */
const prefixes = new Map<string, string>();
const MAX_SHARED_PREFIXES = 10_000;
function prefixOf(handle: string): string {
  const prefix = handle.slice(0, handle.indexOf('/'));
  const shared = prefixes.get(prefix);
  if (shared !== undefined) return shared;
  if (prefixes.size >= MAX_SHARED_PREFIXES) prefixes.clear();
  prefixes.set(prefix, prefix);
  return prefix;
}

/**
 * What found and missing entries share: the handle, the JSON bytes, and the protobuf bytes made
 * from them on first use. Most callers ask for JSON; a record loaded from Postgres is encoded to
 * protobuf only when a caller wants it or the entry goes to Redis (whose frame carries both).
 */
abstract class Entry {
  readonly prefix: string;
  private protoBytes: Buffer | undefined;
  private tags: [string, string] | undefined;

  readonly handle: string;

  constructor(
    handle: string,
    readonly expiresAt: number,
    readonly json: Buffer,
    proto: Buffer | undefined,
  ) {
    this.handle = flatString(handle);
    this.prefix = prefixOf(handle);
    this.protoBytes = proto;
  }

  get proto(): Buffer {
    this.protoBytes ??= copyOf(encodeResolution(JSON.parse(this.json.toString('utf8')) as ResolutionBody));
    return this.protoBytes;
  }

  /** Protobuf bytes if they exist yet (size accounting must not encode). */
  get protoIfEncoded(): Buffer | undefined {
    return this.protoBytes;
  }

  abstract readonly version: number;

  etag(proto: boolean): string {
    this.tags ??= [entityTag(this.version, false), entityTag(this.version, true)];
    return this.tags[proto ? 1 : 0];
  }
}

class Found extends Entry implements FoundEntry {
  readonly found = true;
  private parsed: HandleValue[] | undefined;

  constructor(
    handle: string,
    readonly version: number,
    expiresAt: number,
    json: Buffer,
    proto: Buffer | undefined,
    readonly hasPrivate: boolean,
    /** JSON of every value when some are private; otherwise the values are read from `json`. */
    readonly allValues: Buffer | undefined,
    values?: HandleValue[],
  ) {
    super(handle, expiresAt, json, proto);
    this.parsed = values;
  }

  values(): HandleValue[] {
    if (!this.parsed) {
      this.parsed = this.allValues
        ? (JSON.parse(this.allValues.toString('utf8')) as HandleValue[])
        : (JSON.parse(this.json.toString('utf8')) as { values: HandleValue[] }).values;
    }
    return this.parsed;
  }
}

class Missing extends Entry implements MissingEntry {
  readonly found = false;
  readonly version = 0;
}

/**
 * The public answer for a record: values that deny public read are left out. `withProto` encodes
 * the protobuf bytes now, from the record (cheaper than from the JSON later): for entries bound
 * for Redis. An entry that will be cached does not keep the parsed record (cached entries are
 * bounded by their bytes); one that will not (expiresAt 0) keeps it for an owner's view.
 */
export function foundEntry(record: HandleRecord, expiresAt: number, withProto = false): FoundEntry {
  const hasPrivate = !record.values.every(isPublicRead);
  const visible = hasPrivate ? record.values.filter(isPublicRead) : record.values;
  const body = {
    responseCode: visible.length > 0 ? ResponseCode.SUCCESS : ResponseCode.VALUES_NOT_FOUND,
    handle: record.handle,
    values: visible,
  };
  const json = ownBytes(JSON.stringify(body));
  const proto = withProto ? encodeResolution(body) : undefined;
  const allValues = hasPrivate ? ownBytes(JSON.stringify(record.values)) : undefined;
  return new Found(record.handle, record.version, expiresAt, json, proto, hasPrivate, allValues, expiresAt === 0 ? record.values : undefined);
}

/** The body of a not-found answer, as the error handler words it for /api/handles. */
export function notFoundBody(handle: string): { responseCode: number; handle: string; message: string; code: string } {
  return { responseCode: ResponseCode.HANDLE_NOT_FOUND, handle, message: `handle ${handle} not found`, code: 'HANDLE_NOT_FOUND' };
}

export function missingEntry(handle: string, expiresAt: number): MissingEntry {
  return new Missing(handle, expiresAt, ownBytes(JSON.stringify(notFoundBody(handle))), undefined);
}

/**
 * The handle as one flat string. It becomes the L1 key, compared with every lookup's string; a
 * handle joined from prefix and suffix (`${prefix}/${suffix}`) is a V8 cons string, and a Map
 * compares against that through its pieces, character by character: a batch of 100 lookups spent
 * about 3% of its time there (perf). A JSON round trip is the cheapest copy that is flat (160 ns).
 */
function flatString(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}

/**
 * Bytes of their own for text a cache entry keeps. Buffer.from(string) takes small buffers from
 * Node's shared 8 KiB pool, and one live slice keeps its whole pool slab alive: cached entries
 * made while requests allocated from the pool held about 7 KiB each instead of their 1-2 KiB.
 */
function ownBytes(text: string): Buffer {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  bytes.write(text);
  return bytes;
}

function copyOf(bytes: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
}

/** Heap bytes an entry holds, roughly: what the L1 bound counts. */
export function entrySize(entry: CacheEntry): number {
  const all = entry.found ? ((entry as Found).allValues?.length ?? 0) : 0;
  // Protobuf bytes not encoded yet are counted as if they were (they are smaller than the JSON).
  const proto = (entry as unknown as Entry).protoIfEncoded?.length ?? entry.json.length;
  return 200 + entry.handle.length * 4 + entry.json.length + proto + all;
}

/** One Redis value: header, then length-prefixed JSON, protobuf and (when private) all values. */
export function encodeFrame(entry: CacheEntry): Buffer {
  const all = entry.found ? (entry as Found).allValues : undefined;
  const parts = [entry.json, entry.proto, all ?? Buffer.alloc(0)];
  const frame = Buffer.allocUnsafeSlow(HEADER_BYTES + parts.reduce((n, p) => n + 4 + p.length, 0));
  frame.writeUInt8(FRAME_VERSION, 0);
  frame.writeUInt8(entry.found ? KIND_FOUND : KIND_MISSING, 1);
  frame.writeUInt8(entry.found && entry.hasPrivate ? 1 : 0, 2);
  frame.writeDoubleLE(entry.expiresAt, 3);
  frame.writeDoubleLE(entry.found ? entry.version : 0, 11);
  let at = HEADER_BYTES;
  for (const part of parts) {
    frame.writeUInt32LE(part.length, at);
    part.copy(frame, at + 4);
    at += 4 + part.length;
  }
  return frame;
}

/**
 * A frame to decode into an entry that will be kept: a frame that is a view into a larger buffer
 * (a Redis reply holds every value of an MGET) is copied out, so the entry, whose bytes are views
 * into its frame, keeps only those alive.
 */
export function ownFrame(frame: Buffer): Buffer {
  return frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : copyOf(frame);
}

/** The entry a frame holds (its bytes are views into the frame); undefined for a frame this build cannot read (treated as a miss). */
export function decodeFrame(handle: string, frame: Buffer): CacheEntry | undefined {
  if (frame.length < HEADER_BYTES || frame.readUInt8(0) !== FRAME_VERSION) return undefined;
  const kind = frame.readUInt8(1);
  const hasPrivate = frame.readUInt8(2) === 1;
  const expiresAt = frame.readDoubleLE(3);
  const version = frame.readDoubleLE(11);
  const parts: Buffer[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < 3; i += 1) {
    if (at + 4 > frame.length) return undefined;
    const length = frame.readUInt32LE(at);
    if (at + 4 + length > frame.length) return undefined;
    parts.push(frame.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  const [json, proto, all] = parts as [Buffer, Buffer, Buffer];
  if (kind === KIND_MISSING) return new Missing(handle, expiresAt, json, proto);
  if (kind !== KIND_FOUND) return undefined;
  return new Found(handle, version, expiresAt, json, proto, hasPrivate, hasPrivate ? all : undefined);
}
