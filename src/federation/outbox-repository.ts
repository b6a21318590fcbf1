/**
 * SQL of a secondary node's sync state: numbering outbox rows, reading a batch, recording an ack,
 * the backlog figures, full snapshots (resync) and the per-prefix digests `verify` compares.
 */
import type pg from 'pg';
import type { Db, Tx } from '../infra/postgres.js';
import { withTransaction } from '../infra/postgres.js';
import { Op, type PrefixDigest, type SyncEvent } from './wire.js';

interface OutboxRow {
  seq: string;
  op: 'u' | 'd' | 'e';
  prefix: string;
  suffix: string;
  version: string;
  values_json: string | null;
  at: Date;
}

const OPS = { u: Op.UPSERT, d: Op.DELETE, e: Op.SNAPSHOT_END } as const;

/**
 * Gives the next sequence numbers to up to `limit` unnumbered rows, in id order. The sender row is
 * locked for the transaction, so numbering and resync snapshots never interleave.
 */
export async function numberPending(tx: Tx, limit: number | null): Promise<number> {
  const { rows } = await tx.query<{ next_seq: string }>('SELECT next_seq FROM federation_sender FOR UPDATE');
  const base = Number(rows[0]!.next_seq);
  const { rowCount } = await tx.query(
    `UPDATE federation_outbox o SET seq = $1::bigint + p.rn - 1
     FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM federation_outbox
           WHERE seq IS NULL ORDER BY id LIMIT $2) p
     WHERE o.id = p.id`,
    [base, limit],
  );
  const numbered = rowCount ?? 0;
  if (numbered > 0) await tx.query('UPDATE federation_sender SET next_seq = next_seq + $1, updated_at = now()', [numbered]);
  return numbered;
}

/** Records whether the node serving this database syncs upstream (at each start of a serving process); answers what was recorded before. */
export async function recordUpstream(db: Db, upstream: boolean): Promise<boolean> {
  const before = await servingNodeSyncs(db);
  if (before !== upstream) await db.query('UPDATE federation_sender SET upstream = $1', [upstream]);
  return before;
}

/** Whether the node serving this database syncs upstream, as its last start recorded. */
export async function servingNodeSyncs(db: Db): Promise<boolean> {
  const { rows } = await db.query<{ upstream: boolean }>('SELECT upstream FROM federation_sender');
  return rows[0]?.upstream ?? false;
}

export async function readState(db: Db): Promise<{ nextSeq: number; ackedSeq: number }> {
  const { rows } = await db.query<{ next_seq: string; acked_seq: string }>('SELECT next_seq, acked_seq FROM federation_sender');
  return { nextSeq: Number(rows[0]!.next_seq), ackedSeq: Number(rows[0]!.acked_seq) };
}

/** Numbered events after `after`, in order (they are consecutive: rows go only once acked). */
export async function readBatch(db: Db, after: number, limit: number): Promise<SyncEvent[]> {
  const { rows } = await db.query<OutboxRow>({
    name: 'federation-outbox-read',
    text: `SELECT seq, op, prefix, suffix, version, handle_values::text AS values_json, at
           FROM federation_outbox WHERE seq > $1 ORDER BY seq LIMIT $2`,
    values: [after, limit],
  });
  return rows.map((r) => ({
    seq: Number(r.seq),
    op: OPS[r.op],
    prefix: r.prefix,
    suffix: r.suffix,
    version: r.op === 'e' ? 0 : Number(r.version),
    valuesJson: r.values_json ?? '',
    at: r.at.toISOString(),
    snapshotStart: r.op === 'e' ? Number(r.version) : 0,
  }));
}

/** Age in ms of the oldest change not yet numbered or sent after `after`; undefined when none. */
export async function oldestWaitingMs(db: Db): Promise<number | undefined> {
  const { rows } = await db.query<{ age: number | null }>(
    'SELECT (extract(epoch FROM now() - min(at)) * 1000)::float8 AS age FROM federation_outbox',
  );
  return rows[0]?.age ?? undefined;
}

/** Records the top-level node's ack and drops the rows it covers. */
export async function recordAck(pool: pg.Pool, ackedSeq: number): Promise<void> {
  await withTransaction(pool, async (tx) => {
    await tx.query('UPDATE federation_sender SET acked_seq = greatest(acked_seq, $1), updated_at = now()', [ackedSeq]);
    await tx.query('DELETE FROM federation_outbox WHERE seq <= $1', [ackedSeq]);
  });
}

export interface Backlog {
  backlog: number;
  oldestUnsentAgeS: number;
  ackedSeq: number;
  nextSeq: number;
}

export async function backlog(db: Db): Promise<Backlog> {
  const { rows } = await db.query<{ n: string; age: number | null; next_seq: string; acked_seq: string }>(
    `SELECT (SELECT count(*) FROM federation_outbox) AS n,
            (SELECT extract(epoch FROM now() - min(at))::float8 FROM federation_outbox) AS age,
            s.next_seq, s.acked_seq FROM federation_sender s`,
  );
  const r = rows[0]!;
  return { backlog: Number(r.n), oldestUnsentAgeS: Math.max(0, Math.floor(r.age ?? 0)), ackedSeq: Number(r.acked_seq), nextSeq: Number(r.next_seq) };
}

/**
 * `snode federation resync`: a full snapshot of the identifiers into the outbox, numbered at once,
 * closed by a SNAPSHOT_END that tells the top-level node to drop every escrow record the snapshot
 * did not write. Writes wait while it is taken (SHARE lock), so the snapshot and the stream agree;
 * pending changes are numbered first, so every change before the snapshot is sent before it.
 */
export async function enqueueSnapshot(pool: pg.Pool, realignTo?: number): Promise<{ firstSeq: number; lastSeq: number; records: number; realigned?: { from: number; to: number } }> {
  return withTransaction(pool, async (tx) => {
    await tx.query('LOCK TABLE identifiers IN SHARE MODE');
    await numberPending(tx, null);
    const { rows } = await tx.query<{ next_seq: string; acked_seq: string }>('SELECT next_seq, acked_seq FROM federation_sender FOR UPDATE');
    let start = Number(rows[0]!.next_seq);
    const acked = Number(rows[0]!.acked_seq);
    let realigned: { from: number; to: number } | undefined;
    if (realignTo !== undefined && realignTo !== acked) {
      // The top-level node's position is not ours (a restored database, a reinstall, a top-level
      // node restored behind us): the stream restarts right after its position. Every change
      // waiting here is in the snapshot, which replaces the escrow copy whole.
      await tx.query('DELETE FROM federation_outbox');
      await tx.query('UPDATE federation_sender SET acked_seq = $1', [realignTo]);
      start = realignTo + 1;
      realigned = { from: acked, to: realignTo };
    }
    const inserted = await tx.query(
      `INSERT INTO federation_outbox (op, prefix, suffix, version, handle_values, at, seq)
       SELECT 'u', prefix, suffix, version, handle_values, updated_at, $1::bigint + row_number() OVER (ORDER BY prefix, suffix) - 1
       FROM identifiers`,
      [start],
    );
    const records = inserted.rowCount ?? 0;
    await tx.query(`INSERT INTO federation_outbox (op, version, seq) VALUES ('e', $1, $2)`, [start, start + records]);
    await tx.query('UPDATE federation_sender SET next_seq = $1, updated_at = now()', [start + records + 1]);
    return { firstSeq: start, lastSeq: start + records, records, ...(realigned ? { realigned } : {}) };
  });
}

/**
 * Per-prefix count and digest of records, computed the same way on both sides: MD5 over
 * suffix TAB version TAB values-json NEWLINE, in bytewise suffix order.
 */
export const DIGEST_SQL = (table: string, where: string) => `
  SELECT prefix, count(*)::bigint AS n,
         md5(string_agg(suffix || E'\\t' || version || E'\\t' || handle_values::text || E'\\n', '' ORDER BY suffix)) AS digest
  FROM ${table} ${where} GROUP BY prefix ORDER BY prefix`;

export async function localDigests(db: Db): Promise<PrefixDigest[]> {
  const { rows } = await db.query<{ prefix: string; n: string; digest: string }>(DIGEST_SQL('identifiers', ''));
  return rows.map((r) => ({ prefix: r.prefix, count: Number(r.n), digest: r.digest }));
}
