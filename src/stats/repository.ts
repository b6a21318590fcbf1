/** SQL for statistics: appending deltas, folding them, flushing resolution counts, reading rollups. */
import type pg from 'pg';
import type { Db, Tx } from '../infra/postgres.js';
import { splitRange, type Day, type Granularity } from './periods.js';

export type Metric = 'registrations' | 'resolutions';
export const NODE_WIDE = '*';

const COLUMNS: Record<Metric, readonly [string, string, string]> = {
  registrations: ['creates', 'updates', 'deletes'],
  resolutions: ['found', 'not_found', 'cached'],
};
const TABLE: Record<Metric, string> = { registrations: 'stats_registrations', resolutions: 'stats_resolutions' };

/** Three counters, in the metric's column order. */
export type Counts = [number, number, number];

export interface DeltaRow {
  prefix: string;
  day: Day;
  counts: Counts;
}

/** Arrays for unnest(): prefixes, days and the three counter columns. */
function columns(rows: readonly DeltaRow[]): [string[], string[], number[], number[], number[]] {
  return [rows.map((r) => r.prefix), rows.map((r) => r.day), rows.map((r) => r.counts[0]), rows.map((r) => r.counts[1]), rows.map((r) => r.counts[2])];
}

export async function appendRegistrationDeltas(tx: Tx, rows: readonly DeltaRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO stats_registration_deltas (prefix, day, creates, updates, deletes)
     SELECT * FROM unnest($1::text[], $2::date[], $3::int[], $4::int[], $5::int[])`,
    columns(rows),
  );
}

/** Adds per-(prefix, day) counts to the daily and monthly rollups, per prefix and node-wide. */
function rollupUpsert(metric: Metric, source: string): string {
  const [a, b, c] = COLUMNS[metric];
  const table = TABLE[metric];
  return `
    , expanded AS (
      SELECT 'd' AS grain, prefix, day AS bucket, ${a}, ${b}, ${c} FROM ${source}
      UNION ALL SELECT 'm', prefix, date_trunc('month', day)::date, ${a}, ${b}, ${c} FROM ${source}
      UNION ALL SELECT 'd', '${NODE_WIDE}', day, ${a}, ${b}, ${c} FROM ${source}
      UNION ALL SELECT 'm', '${NODE_WIDE}', date_trunc('month', day)::date, ${a}, ${b}, ${c} FROM ${source}
    )
    INSERT INTO ${table} (grain, prefix, bucket, ${a}, ${b}, ${c})
    SELECT grain, prefix, bucket, sum(${a}), sum(${b}), sum(${c}) FROM expanded
    GROUP BY grain, prefix, bucket
    ORDER BY grain, prefix, bucket
    ON CONFLICT (grain, prefix, bucket) DO UPDATE SET
      ${a} = ${table}.${a} + EXCLUDED.${a},
      ${b} = ${table}.${b} + EXCLUDED.${b},
      ${c} = ${table}.${c} + EXCLUDED.${c}`;
}

// Any one process folds at a time; the others skip that round.
const FOLD_LOCK = 0x534e4f4445;

/** Moves committed deltas into the rollups; returns how many delta rows were folded. */
export async function foldRegistrationDeltas(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [FOLD_LOCK]);
    if (!rows[0]!.locked) {
      await client.query('ROLLBACK');
      return 0;
    }
    const result = await client.query(
      `WITH moved AS (DELETE FROM stats_registration_deltas RETURNING prefix, day, creates, updates, deletes)
       ${rollupUpsert('registrations', 'moved')}`,
    );
    await client.query('COMMIT');
    return result.rowCount ?? 0;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function addResolutionCounts(db: Db, rows: readonly DeltaRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[]) AS t(prefix, day, found, not_found, cached)
     ) ${rollupUpsert('resolutions', 'input')}`,
    columns(rows),
  );
}

/** Which prefixes a query covers: the node as a whole, or some prefixes (each reported apart). */
export type Scope = { kind: 'node' } | { kind: 'prefixes'; prefixes: readonly string[] };

/**
 * Counts per prefix (or NODE_WIDE) over [from, to]: whole months from the monthly rollup, the days
 * around them from the daily one, plus registration deltas not folded yet (so counts are exact).
 */
export async function sumRange(db: Db, metric: Metric, from: Day, to: Day, scope: Scope): Promise<Map<string, Counts>> {
  const [a, b, c] = COLUMNS[metric];
  const split = splitRange(from, to);
  const params: unknown[] = [];
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const where = scope.kind === 'node' ? `prefix = '${NODE_WIDE}'` : `prefix = ANY(${param(scope.prefixes)}::text[])`;
  const ranges: string[] = [];
  if (split.months) ranges.push(`(grain = 'm' AND bucket BETWEEN ${param(split.months.from)}::date AND ${param(split.months.to)}::date)`);
  for (const d of split.days) ranges.push(`(grain = 'd' AND bucket BETWEEN ${param(d.from)}::date AND ${param(d.to)}::date)`);
  const totals = new Map<string, Counts>();
  const add = (prefix: string, counts: Counts) => {
    const t = totals.get(prefix) ?? [0, 0, 0];
    totals.set(prefix, [t[0] + counts[0], t[1] + counts[1], t[2] + counts[2]]);
  };
  if (ranges.length > 0) {
    const { rows } = await db.query<{ prefix: string; a: string; b: string; c: string }>(
      `SELECT prefix, sum(${a}) AS a, sum(${b}) AS b, sum(${c}) AS c FROM ${TABLE[metric]}
       WHERE ${where} AND (${ranges.join(' OR ')}) GROUP BY prefix`,
      params,
    );
    for (const r of rows) add(r.prefix, [Number(r.a), Number(r.b), Number(r.c)]);
  }
  if (metric === 'registrations') {
    const deltaParams: unknown[] = [from, to];
    const filter = scope.kind === 'node' ? '' : 'AND prefix = ANY($3::text[])';
    if (scope.kind === 'prefixes') deltaParams.push(scope.prefixes);
    const { rows } = await db.query<{ prefix: string; a: string; b: string; c: string }>(
      `SELECT prefix, sum(creates) AS a, sum(updates) AS b, sum(deletes) AS c FROM stats_registration_deltas
       WHERE day BETWEEN $1::date AND $2::date ${filter} GROUP BY prefix`,
      deltaParams,
    );
    for (const r of rows) add(scope.kind === 'node' ? NODE_WIDE : r.prefix, [Number(r.a), Number(r.b), Number(r.c)]);
  }
  return totals;
}

/** Counts per bucket start over [from, to] (from/to aligned to the granularity by the caller). */
export async function seriesByBucket(db: Db, metric: Metric, granularity: Granularity, from: Day, to: Day, scope: Scope): Promise<Map<Day, Counts>> {
  const [a, b, c] = COLUMNS[metric];
  const grain = granularity === 'day' ? 'd' : 'm';
  const bucketExpr = granularity === 'quarter' ? `date_trunc('quarter', bucket)::date` : 'bucket';
  const prefixFilter = scope.kind === 'node' ? `prefix = '${NODE_WIDE}'` : 'prefix = ANY($3::text[])';
  const params: unknown[] = [from, to];
  if (scope.kind === 'prefixes') params.push(scope.prefixes);
  const out = new Map<Day, Counts>();
  const add = (bucket: Day, counts: Counts) => {
    const t = out.get(bucket) ?? [0, 0, 0];
    out.set(bucket, [t[0] + counts[0], t[1] + counts[1], t[2] + counts[2]]);
  };
  const { rows } = await db.query<{ bucket: string; a: string; b: string; c: string }>(
    `SELECT to_char(${bucketExpr}, 'YYYY-MM-DD') AS bucket, sum(${a}) AS a, sum(${b}) AS b, sum(${c}) AS c
     FROM ${TABLE[metric]} WHERE grain = '${grain}' AND ${prefixFilter} AND bucket BETWEEN $1::date AND $2::date
     GROUP BY 1`,
    params,
  );
  for (const r of rows) add(r.bucket, [Number(r.a), Number(r.b), Number(r.c)]);
  if (metric === 'registrations') {
    const trunc = granularity === 'day' ? 'day' : `date_trunc('${granularity}', day)::date`;
    const deltaFilter = scope.kind === 'node' ? '' : 'AND prefix = ANY($3::text[])';
    const deltas = await db.query<{ bucket: string; a: string; b: string; c: string }>(
      `SELECT to_char(${trunc}, 'YYYY-MM-DD') AS bucket, sum(creates) AS a, sum(updates) AS b, sum(deletes) AS c
       FROM stats_registration_deltas WHERE day BETWEEN $1::date AND $2::date ${deltaFilter} GROUP BY 1`,
      params,
    );
    for (const r of deltas.rows) add(r.bucket, [Number(r.a), Number(r.b), Number(r.c)]);
  }
  return out;
}
