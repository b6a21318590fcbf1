/** SQL of the audit log: append, seal in order, read back for verification and queries. */
import type { Db, Tx } from '../infra/postgres.js';
import { digestOf, type AuditEntry, type StoredEntry } from './entry.js';

export async function appendEntries(db: Db, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const cols: Array<Array<string | null>> = Array.from({ length: 9 }, () => []);
  for (const e of entries) {
    const row = [
      e.context.keyId, e.context.role, e.action, e.target, e.context.requestId ?? null, e.context.clientIp ?? null,
      digestOf(e.before), digestOf(e.after), e.detail ? JSON.stringify(e.detail) : null,
    ];
    row.forEach((v, i) => cols[i]!.push(v));
  }
  await db.query(
    `INSERT INTO audit_log (actor_key, actor_role, action, target, request_id, client_ip, before_digest, after_digest, detail)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::jsonb[])`,
    cols,
  );
}

const STORED_COLUMNS = `id::text AS id, (extract(epoch FROM at) * 1000000)::bigint::text AS at_micros, actor_key, actor_role, action, target,
  request_id, client_ip, before_digest, after_digest, detail::text AS detail`;

type StoredDbRow = {
  id: string; at_micros: string; actor_key: string | null; actor_role: string; action: string; target: string;
  request_id: string | null; client_ip: string | null; before_digest: string | null; after_digest: string | null; detail: string | null;
};
const toStored = (r: StoredDbRow): StoredEntry => ({
  id: r.id, atMicros: r.at_micros, actorKey: r.actor_key, actorRole: r.actor_role, action: r.action, target: r.target,
  requestId: r.request_id, clientIp: r.client_ip, beforeDigest: r.before_digest, afterDigest: r.after_digest, detail: r.detail,
});

export async function chainHead(db: Db): Promise<{ seq: string; hash: Buffer } | undefined> {
  const { rows } = await db.query<{ seq: string; hash: Buffer }>('SELECT seq::text AS seq, hash FROM audit_chain_head');
  return rows[0];
}

/** Committed entries not yet in the chain, oldest id first. */
export async function unsealed(tx: Tx, limit: number): Promise<StoredEntry[]> {
  const { rows } = await tx.query<StoredDbRow>(`SELECT ${STORED_COLUMNS} FROM audit_log WHERE seq IS NULL ORDER BY audit_log.id LIMIT $1`, [limit]);
  return rows.map(toStored);
}

export async function countUnsealed(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log WHERE seq IS NULL');
  return rows[0]!.n;
}

export async function writeSeals(tx: Tx, seals: Array<{ id: string; seq: string; prev: Buffer; hash: Buffer }>): Promise<void> {
  await tx.query(
    `UPDATE audit_log a SET seq = u.seq, prev_hash = u.prev, hash = u.hash
     FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS u(id, seq, prev, hash) WHERE a.id = u.id`,
    [seals.map((s) => s.id), seals.map((s) => s.seq), seals.map((s) => s.prev), seals.map((s) => s.hash)],
  );
  const last = seals[seals.length - 1]!;
  await tx.query(
    `INSERT INTO audit_chain_head (singleton, seq, hash) VALUES (true, $1, $2)
     ON CONFLICT (singleton) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash`,
    [last.seq, last.hash],
  );
}

export interface SealedEntry extends StoredEntry {
  seq: string;
  prevHash: Buffer | null;
  hash: Buffer | null;
}

/** Sealed entries after `afterSeq`, in chain order. */
export async function sealedPage(db: Db, afterSeq: string, limit: number): Promise<SealedEntry[]> {
  const { rows } = await db.query<StoredDbRow & { seq: string; prev_hash: Buffer | null; hash: Buffer | null }>(
    `SELECT ${STORED_COLUMNS}, seq::text AS seq, prev_hash, hash FROM audit_log
     WHERE audit_log.seq > $1 ORDER BY audit_log.seq LIMIT $2`,
    [afterSeq, limit],
  );
  return rows.map((r) => ({ ...toStored(r), seq: r.seq, prevHash: r.prev_hash, hash: r.hash }));
}

export interface AuditQuery {
  target?: string;
  actor?: string;
  action?: string;
  from?: Date;
  to?: Date;
  /** Only entries with a smaller id (paging backwards from the newest). */
  beforeId?: string;
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
    `SELECT id::text AS id, seq::text AS seq, at, actor_key, actor_role, action, target, request_id, client_ip, before_digest, after_digest, detail
     FROM audit_log
     WHERE ($1::text IS NULL OR target = $1) AND ($2::text IS NULL OR actor_key = $2) AND ($3::text IS NULL OR action = $3)
       AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5) AND ($6::bigint IS NULL OR id < $6)
     ORDER BY audit_log.id DESC LIMIT $7`,
    [q.target ?? null, q.actor ?? null, q.action ?? null, q.from ?? null, q.to ?? null, q.beforeId ?? null, q.limit],
  );
  return rows.map((r) => ({
    id: r.id, seq: r.seq, at: r.at.toISOString(), actorKey: r.actor_key, actorRole: r.actor_role, action: r.action, target: r.target,
    requestId: r.request_id, clientIp: r.client_ip, beforeDigest: r.before_digest, afterDigest: r.after_digest, detail: r.detail,
  }));
}
