/** Audit entries and the hash chain over them. Pure: no I/O. */
import { createHash, hash } from 'node:crypto';
import { canonicalJson } from '../infra/canonical-json.js';

export { canonicalJson };

/** Who did something, from where, under which request. */
export interface AuditContext {
  /** The API key's id; null for anonymous callers; 'cli' for the command line. */
  keyId: string | null;
  /** anonymous, enterprise, auditor, admin, or system (the command line). */
  role: string;
  requestId?: string | null;
  clientIp?: string | null;
}

export interface AuditEntry {
  context: AuditContext;
  /** Dotted verb, e.g. identifier.create, key.revoke, application.approve. */
  action: string;
  /** What the action touched: a handle, a prefix, a key id, an application id. */
  target: string;
  /** The state before and after; only their digests are kept. undefined/null: none. */
  before?: unknown;
  after?: unknown;
  /** Small facts worth keeping in clear (a reason, a role), never secrets. */
  detail?: Record<string, unknown> | null;
}

/** SHA-256 (hex) of the canonical JSON of a state; null when there is no state. */
export function digestOf(state: unknown): string | null {
  if (state === undefined || state === null) return null;
  return hash('sha256', canonicalJson(state), 'hex');
}

/** A stored entry as the chain sees it: every column, times in microseconds, detail as stored text. */
export interface StoredEntry {
  id: string;
  atMicros: string;
  actorKey: string | null;
  actorRole: string;
  action: string;
  target: string;
  requestId: string | null;
  clientIp: string | null;
  beforeDigest: string | null;
  afterDigest: string | null;
  detail: string | null;
}

export const GENESIS = Buffer.alloc(32);

/** An entry's fields in the order the chain hashes them (after its position). */
export type EntryFields = readonly [
  id: string, atMicros: string, actorKey: string | null, actorRole: string, action: string, target: string,
  requestId: string | null, clientIp: string | null, beforeDigest: string | null, afterDigest: string | null, detail: string | null,
];

export const entryFields = (e: StoredEntry): EntryFields => [
  e.id, e.atMicros, e.actorKey, e.actorRole, e.action, e.target, e.requestId, e.clientIp, e.beforeDigest, e.afterDigest, e.detail,
];

/** hash(n) = SHA-256(hash(n-1) || canonical entry n with its position): changing, dropping or moving an entry breaks every later link. */
export function chainHash(previous: Buffer, seq: string, e: StoredEntry): Buffer {
  return chainHashOf(previous, seq, entryFields(e));
}

/** The same from the fields as a row gives them (the sealer reads rows as arrays). */
export function chainHashOf(previous: Buffer, seq: string, fields: EntryFields): Buffer {
  // JSON.stringify([seq, ...fields]), without building that array.
  const body = `[${JSON.stringify(seq)},${JSON.stringify(fields).slice(1)}`;
  // previous || body in one reused buffer, hashed in one call: a Hash object per entry cost the
  // sealer more than the hashing. (A UTF-16 code unit is at most 3 bytes of UTF-8.)
  if (previous.length + body.length * 3 > CHAIN_SCRATCH.length) return createHash('sha256').update(previous).update(body, 'utf8').digest();
  previous.copy(CHAIN_SCRATCH, 0);
  const end = previous.length + CHAIN_SCRATCH.write(body, previous.length, 'utf8');
  return hash('sha256', CHAIN_SCRATCH.subarray(0, end), 'buffer');
}

/** chainHashOf's working buffer (hashing is synchronous: one buffer serves every call). */
const CHAIN_SCRATCH = Buffer.allocUnsafeSlow(64 * 1024);

/** A chain head: a position and the hash of the chain up to it (hex). */
export interface ChainHead {
  seq: string;
  hash: string;
}

/** `<seq>:<hash>` as `snode audit head` and GET /api/audit/head print them. */
export const ANCHOR_PATTERN = '^[1-9][0-9]{0,18}:[0-9a-fA-F]{64}$';

export function parseAnchor(text: string): ChainHead | undefined {
  if (!new RegExp(ANCHOR_PATTERN).test(text)) return undefined;
  const [seq, hash] = text.split(':') as [string, string];
  return { seq, hash: hash.toLowerCase() };
}
