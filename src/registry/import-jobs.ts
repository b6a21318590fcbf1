/** SQL for import jobs and their rejected lines. */
import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../infra/postgres.js';
import type { Actor } from '../tenancy/actor.js';
import type { ImportFormat, ImportMode } from './import-lines.js';

export type ImportState = 'receiving' | 'queued' | 'running' | 'done' | 'failed';

export interface ImportJob {
  id: string;
  apiKeyId: string;
  actor: Extract<Actor, { kind: 'key' }>;
  prefix: string;
  format: ImportFormat;
  mode: ImportMode;
  source: 'upload' | 'cli';
  filePath: string;
  state: ImportState;
  bytes: number;
  linesRead: number;
  written: number;
  rejected: number;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface Rejection {
  lineNo: number;
  code: string;
  reason: string;
  line: string;
}

/** Rejected lines keep at most this many characters of the line. */
const LINE_KEPT = 2000;

const COLUMNS = `id, api_key_id, actor, prefix, format, mode, source, file_path, state, bytes, lines_read, written, rejected, error,
  created_at, updated_at, finished_at`;

interface Row {
  id: string;
  api_key_id: string;
  actor: ImportJob['actor'];
  prefix: string;
  format: ImportFormat;
  mode: ImportMode;
  source: 'upload' | 'cli';
  file_path: string;
  state: ImportState;
  bytes: string;
  lines_read: string;
  written: string;
  rejected: string;
  error: string | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const toJob = (r: Row): ImportJob => ({
  id: r.id,
  apiKeyId: r.api_key_id,
  actor: r.actor,
  prefix: r.prefix,
  format: r.format,
  mode: r.mode,
  source: r.source,
  filePath: r.file_path,
  state: r.state,
  bytes: Number(r.bytes),
  linesRead: Number(r.lines_read),
  written: Number(r.written),
  rejected: Number(r.rejected),
  error: r.error,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
});

/** A process's hold on the jobs it received: its id, and how long a hold lasts unrenewed (IMPORT_LEASE_SECONDS). */
export interface Lease {
  owner: string;
  seconds: number;
}

export async function createJob(
  db: Db,
  job: Pick<ImportJob, 'actor' | 'prefix' | 'format' | 'mode' | 'source' | 'state'> & { filePath: (id: string) => string; bytes?: number; lease: Lease },
): Promise<ImportJob> {
  const id = randomUUID();
  const { rows } = await db.query<Row>(
    `INSERT INTO imports (id, api_key_id, actor, prefix, format, mode, source, file_path, state, bytes, owner, lease_until)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12)) RETURNING ${COLUMNS}`,
    [id, job.actor.keyId, JSON.stringify(job.actor), job.prefix, job.format, job.mode, job.source, job.filePath(id), job.state, job.bytes ?? 0, job.lease.owner, job.lease.seconds],
  );
  return toJob(rows[0]!);
}

/** Keeps the jobs this process received and has not started yet (receiving, queued) its own. */
export async function renewLeases(db: Db, lease: Lease): Promise<void> {
  await db.query(
    `UPDATE imports SET lease_until = now() + make_interval(secs => $2) WHERE owner = $1 AND state IN ('receiving', 'queued')`,
    [lease.owner, lease.seconds],
  );
}

export async function getJob(db: Db, id: string): Promise<ImportJob | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM imports WHERE id = $1`, [id]);
  return rows[0] ? toJob(rows[0]) : undefined;
}

/**
 * Unfinished jobs another process may take over: running ones (their advisory lock says whether
 * their process is alive), and received or queued ones whose process stopped renewing its lease.
 */
export async function unfinishedJobs(db: Db): Promise<ImportJob[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM imports
     WHERE state = 'running' OR (state IN ('receiving', 'queued') AND (lease_until IS NULL OR lease_until < now()))
     ORDER BY created_at`,
  );
  return rows.map(toJob);
}

/**
 * Moves a job to `state`; with `from`, only out of that state (false: the job had moved on, say a
 * process that started took over an upload whose process seemed gone, and failed it).
 */
export async function setState(db: Db, id: string, state: ImportState, extra: { bytes?: number; error?: string; from?: ImportState } = {}): Promise<boolean> {
  const finished = state === 'done' || state === 'failed';
  const result = await db.query(
    `UPDATE imports SET state = $2, bytes = coalesce($3, bytes), error = coalesce($4, error), updated_at = now(),
       finished_at = CASE WHEN $5 THEN now() ELSE finished_at END
     WHERE id = $1 AND ($6::text IS NULL OR state = $6)`,
    [id, state, extra.bytes ?? null, extra.error ?? null, finished, extra.from ?? null],
  );
  return result.rowCount === 1;
}

/** A chunk's outcome, in the chunk's transaction: its rejections and the job's counters. */
export async function recordChunk(tx: Tx, id: string, linesRead: number, written: number, rejections: readonly Rejection[]): Promise<void> {
  if (rejections.length > 0) {
    await tx.query(
      `INSERT INTO import_rejections (import_id, line_no, code, reason, line)
       SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])`,
      [id, rejections.map((r) => r.lineNo), rejections.map((r) => r.code), rejections.map((r) => r.reason), rejections.map((r) => r.line.slice(0, LINE_KEPT))],
    );
  }
  await tx.query(
    `UPDATE imports SET lines_read = $2, written = written + $3, rejected = rejected + $4, updated_at = now() WHERE id = $1`,
    [id, linesRead, written, rejections.length],
  );
}

/** Rejected lines after `afterLine`, in line order, a page at a time. */
export async function rejections(db: Db, id: string, afterLine: number, limit: number): Promise<Rejection[]> {
  const { rows } = await db.query<{ line_no: string; code: string; reason: string; line: string }>(
    'SELECT line_no, code, reason, line FROM import_rejections WHERE import_id = $1 AND line_no > $2 ORDER BY line_no LIMIT $3',
    [id, afterLine, limit],
  );
  return rows.map((r) => ({ lineNo: Number(r.line_no), code: r.code, reason: r.reason, line: r.line }));
}
