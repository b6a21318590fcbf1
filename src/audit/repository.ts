/**
 * SQL of the audit log: append entries (written once, never updated), seal committed entries into
 * the chain (audit_seals, insert-only), read the chain back for verification, query entries.
 */
import type { Db, Tx } from '../infra/postgres.js';
import { digestOf, type AuditEntry, type EntryFields, type StoredEntry } from './entry.js';

// Named statements: each connection parses and plans them once, not once per write. One entry (a
// single write) goes as plain parameters; many go as one JSON parameter (json_to_recordset), one
// native JSON.stringify instead of nine Postgres arrays that pg escapes element by element.
const APPEND_ONE = `INSERT INTO audit_log (actor_key, actor_role, action, target, request_id, client_ip, before_digest, after_digest, detail)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)`;
const APPEND_MANY = `INSERT INTO audit_log (actor_key, actor_role, action, target, request_id, client_ip, before_digest, after_digest, detail)
  SELECT e.k, e.r, e.a, e.t, e.q, e.i, e.b, e.f, e.d
  FROM json_to_recordset($1::json) AS e(k text, r text, a text, t text, q text, i text, b text, f text, d jsonb)`;

const row = (e: AuditEntry): Array<string | null> => [
  e.context.keyId, e.context.role, e.action, e.target, e.context.requestId ?? null, e.context.clientIp ?? null,
  digestOf(e.before), digestOf(e.after), e.detail ? JSON.stringify(e.detail) : null,
];

/** An entry as an element of APPEND_MANY's JSON (its detail as a JSON object, not as text). */
const jsonRow = (e: AuditEntry) => ({
  k: e.context.keyId, r: e.context.role, a: e.action, t: e.target, q: e.context.requestId ?? null, i: e.context.clientIp ?? null,
  b: digestOf(e.before), f: digestOf(e.after), d: e.detail ?? null,
});

/** The statement appending entries (a change sink's part of a write, or run alone). */
export function appendStatement(entries: readonly AuditEntry[]): { name: string; text: string; values: unknown[] } {
  if (entries.length === 1) return { name: 'audit-append-one', text: APPEND_ONE, values: row(entries[0]!) };
  return { name: 'audit-append', text: APPEND_MANY, values: [JSON.stringify(entries.map(jsonRow))] };
}

export async function appendEntries(db: Db, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.query(appendStatement(entries));
}

const STORED_COLUMNS = `a.id::text AS id, (extract(epoch FROM a.at) * 1000000)::bigint::text AS at_micros, a.actor_key, a.actor_role, a.action,
  a.target, a.request_id, a.client_ip, a.before_digest, a.after_digest, a.detail::text AS detail`;

type StoredDbRow = {
  id: string; at_micros: string; actor_key: string | null; actor_role: string; action: string; target: string;
  request_id: string | null; client_ip: string | null; before_digest: string | null; after_digest: string | null; detail: string | null;
};
const toStored = (r: StoredDbRow): StoredEntry => ({
  id: r.id, atMicros: r.at_micros, actorKey: r.actor_key, actorRole: r.actor_role, action: r.action, target: r.target,
  requestId: r.request_id, clientIp: r.client_ip, beforeDigest: r.before_digest, afterDigest: r.after_digest, detail: r.detail,
});

/** Where the chain ends and where the last sealing round stopped. */
export interface SealerState {
  /** The last seal's position ('0' before the first) and hash. */
  seq: string;
  hash: Buffer;
  /** Entries with xid below horizon and not in pending are sealed. */
  horizon: string;
  pending: string[];
  sealedAt: Date | null;
}

export async function sealerState(db: Db, lock = false): Promise<SealerState> {
  const { rows } = await db.query<{ seq: string; hash: Buffer; horizon: string; pending: string[]; sealed_at: Date | null }>(
    `SELECT seq::text AS seq, hash, horizon::text AS horizon, pending::text[] AS pending, sealed_at FROM audit_sealer${lock ? ' FOR UPDATE' : ''}`,
  );
  const row = rows[0];
  if (!row) throw new Error('the audit chain head (audit_sealer) is missing');
  return { seq: row.seq, hash: row.hash, horizon: row.horizon, pending: row.pending, sealedAt: row.sealed_at };
}

/** The transaction's snapshot: transactions at or past xmax, or in xip, had not finished when it was taken. */
export async function snapshot(tx: Tx): Promise<{ xmax: string; xip: string[] }> {
  const { rows } = await tx.query<{ xmax: string; xip: string[] }>(
    `SELECT pg_snapshot_xmax(s)::text AS xmax, ARRAY(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip FROM pg_current_snapshot() AS s`,
  );
  return rows[0]!;
}

/** A committed entry to seal: its fields in chain order, and its transaction. */
export interface Candidate {
  fields: EntryFields;
  xid: string;
}

// The columns of EntryFields, in order, then xid. Read as arrays: the sealer reads every entry once.
const FIELD_COLUMNS = `a.id::text, (extract(epoch FROM a.at) * 1000000)::bigint::text, a.actor_key, a.actor_role, a.action, a.target,
  a.request_id, a.client_ip, a.before_digest, a.after_digest, a.detail::text, a.xid::text`;

/**
 * Committed entries the last round could not seal, in (xid, id) order after `cursor`: those of the
 * transactions it saw running (`pending`), or those written at or after its horizon. Entries of
 * transactions still running are invisible to the snapshot, so they wait for a later round.
 */
export async function candidates(tx: Tx, where: { pending: string[] } | { horizon: string }, cursor: { xid: string; id: string }, limit: number): Promise<Candidate[]> {
  // The scan starts at the cursor, raised to the first xid that can match: with a cursor of (0, 0)
  // Postgres took the row comparison as the index scan's lower bound and walked every entry below
  // the horizon (50 ms a round, every AUDIT_SEAL_MS, at two million entries). Ids start at 1, so
  // (xid, id) > (horizon, 0) is xid >= horizon.
  if ('pending' in where && where.pending.length === 0) return [];
  const first = 'pending' in where ? where.pending.reduce((a, b) => (BigInt(b) < BigInt(a) ? b : a)) : where.horizon;
  const from = BigInt(cursor.xid) < BigInt(first) ? { xid: first, id: '0' } : cursor;
  const pending = 'pending' in where ? where.pending : undefined;
  const { rows } = await tx.query<Array<string | null>>({
    text: pending
      ? `SELECT ${FIELD_COLUMNS} FROM audit_log a
     WHERE a.xid = ANY ($4::xid8[]) AND (a.xid, a.id) > ($1::xid8, $2::bigint) ORDER BY a.xid, a.id LIMIT $3`
      : `SELECT ${FIELD_COLUMNS} FROM audit_log a
     WHERE (a.xid, a.id) > ($1::xid8, $2::bigint) ORDER BY a.xid, a.id LIMIT $3`,
    values: [from.xid, from.id, limit, ...(pending ? [pending] : [])],
    rowMode: 'array',
  });
  return rows.map((r) => ({ fields: r.slice(0, 11) as unknown as EntryFields, xid: r[11]! }));
}

/**
 * Committed entries with no seal, by id after `afterId`: what a round seals after the database was
 * restored into another Postgres server, where transaction ids (and so the horizon) mean nothing.
 */
export async function unsealedById(tx: Tx, afterId: string, limit: number): Promise<Candidate[]> {
  const { rows } = await tx.query<Array<string | null>>({
    text: `SELECT ${FIELD_COLUMNS} FROM audit_log a
     WHERE a.id > $1::bigint AND NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.entry_id = a.id) ORDER BY a.id LIMIT $2`,
    values: [afterId, limit],
    rowMode: 'array',
  });
  return rows.map((r) => ({ fields: r.slice(0, 11) as unknown as EntryFields, xid: r[11]! }));
}

/**
 * Entries whose transaction ids came from another server (at or above this server's next one, so
 * never its own) get xid 0, as sealed entries had when the sealer began: below every horizon from
 * now on. The id is bookkeeping for the sealer; it is not part of an entry's hash.
 */
export async function forgetForeignTransactions(tx: Tx, nextXid: string): Promise<number> {
  const { rowCount } = await tx.query("UPDATE audit_log SET xid = '0' WHERE xid >= $1::xid8", [nextXid]);
  return rowCount ?? 0;
}

export async function insertSeals(tx: Tx, seals: ReadonlyArray<{ seq: string; entryId: string; hash: Buffer }>): Promise<void> {
  await tx.query({
    name: 'audit-seals-insert',
    text: `INSERT INTO audit_seals (seq, entry_id, hash)
      SELECT s.q, s.e, decode(s.h, 'hex') FROM json_to_recordset($1::json) AS s(q bigint, e bigint, h text)`,
    values: [JSON.stringify(seals.map((s) => ({ q: s.seq, e: s.entryId, h: s.hash.toString('hex') })))],
  });
}

export async function saveSealerState(tx: Tx, state: { seq: string; hash: Buffer; horizon: string; pending: string[] }): Promise<void> {
  await tx.query(
    'UPDATE audit_sealer SET seq = $1, hash = $2, horizon = $3::xid8, pending = $4::xid8[], sealed_at = now()',
    [state.seq, state.hash, state.horizon, state.pending],
  );
}

/** Committed entries not sealed yet (the next round seals them). */
export async function countUnsealed(db: Db, state: SealerState): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM audit_log WHERE xid >= $1::xid8 OR xid = ANY ($2::xid8[])',
    [state.horizon, state.pending],
  );
  return rows[0]!.n;
}

/**
 * The first entry (by id) that is in the log but in no seal although the sealer has passed it: one
 * added behind the node's back, or whose seal was removed.
 */
export async function firstOrphan(db: Db, state: SealerState): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT a.id::text AS id FROM audit_log a
     WHERE NOT COALESCE(a.xid >= $1::xid8 OR a.xid = ANY ($2::xid8[]), false)
       AND NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.entry_id = a.id)
     ORDER BY a.id LIMIT 1`,
    [state.horizon, state.pending],
  );
  return rows[0]?.id;
}

export interface SealedEntry {
  seq: string;
  entryId: string;
  hash: Buffer;
  /** undefined when the sealed entry is no longer in the log. */
  entry: StoredEntry | undefined;
}

/** Seals after `afterSeq` up to `lastSeq`, in chain order, with their entries. */
export async function sealedPage(db: Db, afterSeq: string, lastSeq: string, limit: number): Promise<SealedEntry[]> {
  const { rows } = await db.query<StoredDbRow & { seq: string; entry_id: string; hash: Buffer; found: boolean }>(
    `SELECT s.seq::text AS seq, s.entry_id::text AS entry_id, s.hash, a.id IS NOT NULL AS found, ${STORED_COLUMNS}
     FROM audit_seals s LEFT JOIN audit_log a ON a.id = s.entry_id
     WHERE s.seq > $1 AND s.seq <= $2 ORDER BY s.seq LIMIT $3`,
    [afterSeq, lastSeq, limit],
  );
  return rows.map((r) => ({ seq: r.seq, entryId: r.entry_id, hash: r.hash, entry: r.found ? toStored(r) : undefined }));
}

/** The time of the entry a seal points at, if both exist. */
export async function sealedEntryTime(db: Db, seq: string): Promise<Date | undefined> {
  const { rows } = await db.query<{ at: Date }>('SELECT a.at FROM audit_seals s JOIN audit_log a ON a.id = s.entry_id WHERE s.seq = $1', [seq]);
  return rows[0]?.at;
}

export interface AuditQuery {
  target?: string;
  actor?: string;
  action?: string;
  from?: Date;
  to?: Date;
  /** Only entries with a smaller id (paging backwards from the newest). */
  beforeId?: string;
  /**
   * Sealed entries after this chain position, oldest first: a walk that never misses an entry.
   * Ids are drawn before commit, so an entry committing late can appear below a page already read
   * by id; its seal position is always after every position handed out before it.
   */
  afterSeq?: string;
  limit: number;
}

export interface AuditRecord {
  id: string;
  seq: string | null;
  at: string;
  actorKey: string | null;
  actorRole: string;
  action: string;
  target: string;
  requestId: string | null;
  clientIp: string | null;
  beforeDigest: string | null;
  afterDigest: string | null;
  detail: unknown;
}

export async function queryEntries(db: Db, q: AuditQuery): Promise<AuditRecord[]> {
  const { rows } = await db.query<{
    id: string; seq: string | null; at: Date; actor_key: string | null; actor_role: string; action: string; target: string;
    request_id: string | null; client_ip: string | null; before_digest: string | null; after_digest: string | null; detail: unknown;
  }>(
    `SELECT a.id::text AS id, s.seq::text AS seq, a.at, a.actor_key, a.actor_role, a.action, a.target, a.request_id, a.client_ip,
            a.before_digest, a.after_digest, a.detail
     FROM ${q.afterSeq === undefined ? 'audit_log a LEFT JOIN audit_seals s ON s.entry_id = a.id' : 'audit_seals s JOIN audit_log a ON a.id = s.entry_id'}
     WHERE ($1::text IS NULL OR a.target = $1) AND ($2::text IS NULL OR a.actor_key = $2) AND ($3::text IS NULL OR a.action = $3)
       AND ($4::timestamptz IS NULL OR a.at >= $4) AND ($5::timestamptz IS NULL OR a.at < $5)
       ${q.afterSeq === undefined ? 'AND ($6::bigint IS NULL OR a.id < $6) ORDER BY a.id DESC' : 'AND s.seq > $6::bigint ORDER BY s.seq'} LIMIT $7`,
    [q.target ?? null, q.actor ?? null, q.action ?? null, q.from ?? null, q.to ?? null, q.afterSeq ?? q.beforeId ?? null, q.limit],
  );
  return rows.map((r) => ({
    id: r.id, seq: r.seq, at: r.at.toISOString(), actorKey: r.actor_key, actorRole: r.actor_role, action: r.action, target: r.target,
    requestId: r.request_id, clientIp: r.client_ip, beforeDigest: r.before_digest, afterDigest: r.after_digest, detail: r.detail,
  }));
}
