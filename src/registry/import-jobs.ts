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

export async function createJob(
  db: Db,
  job: Pick<ImportJob, 'actor' | 'prefix' | 'format' | 'mode' | 'source' | 'state'> & { filePath: (id: string) => string; bytes?: number },
): Promise<ImportJob> {
  const id = randomUUID();
  const { rows } = await db.query<Row>(
    `INSERT INTO imports (id, api_key_id, actor, prefix, format, mode, source, file_path, state, bytes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
    [id, job.actor.keyId, JSON.stringify(job.actor), job.prefix, job.format, job.mode, job.source, job.filePath(id), job.state, job.bytes ?? 0],
  );
  return toJob(rows[0]!);
}

export async function getJob(db: Db, id: string): Promise<ImportJob | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM imports WHERE id = $1`, [id]);
  return rows[0] ? toJob(rows[0]) : undefined;
}

export async function unfinishedJobs(db: Db): Promise<ImportJob[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM imports WHERE state IN ('receiving', 'queued', 'running') ORDER BY created_at`);
  return rows.map(toJob);
}

export async function setState(db: Db, id: string, state: ImportState, extra: { bytes?: number; error?: string } = {}): Promise<void> {
  const finished = state === 'done' || state === 'failed';
  await db.query(
    `UPDATE imports SET state = $2, bytes = coalesce($3, bytes), error = coalesce($4, error), updated_at = now(),
       finished_at = CASE WHEN $5 THEN now() ELSE finished_at END
     WHERE id = $1`,
    [id, state, extra.bytes ?? null, extra.error ?? null, finished],
  );
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
