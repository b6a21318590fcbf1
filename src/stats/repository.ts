/** SQL for statistics: appending deltas, folding them, flushing resolution counts, reading rollups. */
import type pg from 'pg';
import type { Db } from '../infra/postgres.js';
import { coverRange, type Day, type Granularity } from './periods.js';

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

/** The statement appending registration deltas (a change sink's part of the write). */
export function registrationDeltasStatement(rows: readonly DeltaRow[]): { name: string; text: string; values: unknown[] } {
  return {
    name: 'stats-registration-deltas',
    text: `INSERT INTO stats_registration_deltas (prefix, day, creates, updates, deletes)
     SELECT * FROM unnest($1::text[], $2::date[], $3::int[], $4::int[], $5::int[])`,
    values: columns(rows),
  };
}

export async function appendRegistrationDeltas(db: Db, rows: readonly DeltaRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(registrationDeltasStatement(rows));
}

/** The all-time bucket of grain 't'. */
export const ALL_TIME: Day = '1970-01-01';

const GRAIN_BUCKETS = [
  ['d', 'day'],
  ['m', `date_trunc('month', day)::date`],
  ['q', `date_trunc('quarter', day)::date`],
  ['y', `date_trunc('year', day)::date`],
  ['t', `DATE '${ALL_TIME}'`],
] as const;

/**
 * SQL that adds per-(prefix, day) counts from `source` (columns prefix, day and the metric's three)
 * to every rollup grain, per prefix and node-wide. Upserts in key order, so concurrent flushes
 * lock rows in the same order and cannot deadlock.
 */
export function rollupUpsert(metric: Metric, source: string): string {
  const [a, b, c] = COLUMNS[metric];
  const table = TABLE[metric];
  const expanded = GRAIN_BUCKETS.flatMap(([grain, bucket]) => [
    `SELECT '${grain}' AS grain, prefix, ${bucket} AS bucket, ${a}, ${b}, ${c} FROM ${source}`,
    `SELECT '${grain}', '${NODE_WIDE}', ${bucket}, ${a}, ${b}, ${c} FROM ${source}`,
  ]).join('\n      UNION ALL ');
  return `
    , expanded AS (
      ${expanded}
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

/**
 * Which prefixes a query covers: the node as a whole (one node-wide figure), some prefixes, or
 * every prefix (each reported apart; read by bucket rather than prefix by prefix).
 */
export type Scope = { kind: 'node' } | { kind: 'prefixes'; prefixes: readonly string[] } | { kind: 'every-prefix' };

/** The WHERE clause of a scope; pushes its parameter when it has one. */
function scopeFilter(scope: Scope, param: (v: unknown) => string): string {
  if (scope.kind === 'node') return `prefix = '${NODE_WIDE}'`;
  if (scope.kind === 'every-prefix') return `prefix <> '${NODE_WIDE}'`;
  return `prefix = ANY(${param(scope.prefixes)}::text[])`;
}

/**
 * Counts per prefix (or NODE_WIDE) from the rollups over the given (grain, bucket range) runs, plus
 * unfolded deltas. One statement, so one snapshot: a fold moves deltas into the rollups in one
 * transaction, and two statements could see it between them (its deltas counted twice, or not at all).
 */
async function sumRuns(db: Db, metric: Metric, runs: ReadonlyArray<{ grain: string; from: Day; to: Day }>, deltaRange: { from: Day; to: Day } | undefined, scope: Scope): Promise<Map<string, Counts>> {
  const [a, b, c] = COLUMNS[metric];
  const totals = new Map<string, Counts>();
  const add = (prefix: string, counts: Counts) => {
    const t = totals.get(prefix) ?? [0, 0, 0];
    totals.set(prefix, [t[0] + counts[0], t[1] + counts[1], t[2] + counts[2]]);
  };
  const params: unknown[] = [];
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const parts: string[] = [];
  if (runs.length > 0) {
    const where = scopeFilter(scope, param);
    const ranges = runs.map((r) => `(grain = '${r.grain}' AND bucket BETWEEN ${param(r.from)}::date AND ${param(r.to)}::date)`);
    parts.push(
      `SELECT prefix, false AS delta, sum(${a})::bigint AS a, sum(${b})::bigint AS b, sum(${c})::bigint AS c FROM ${TABLE[metric]}
       WHERE ${where} AND (${ranges.join(' OR ')}) GROUP BY prefix`,
    );
  }
  if (metric === 'registrations' && deltaRange) {
    const days = `day BETWEEN ${param(deltaRange.from)}::date AND ${param(deltaRange.to)}::date`;
    const where = scope.kind === 'prefixes' ? `AND ${scopeFilter(scope, param)}` : '';
    parts.push(
      `SELECT prefix, true AS delta, sum(creates)::bigint AS a, sum(updates)::bigint AS b, sum(deletes)::bigint AS c FROM stats_registration_deltas
       WHERE ${days} ${where} GROUP BY prefix`,
    );
  }
  if (parts.length === 0) return totals;
  const { rows } = await db.query<{ prefix: string; delta: boolean; a: string; b: string; c: string }>(parts.join('\n UNION ALL\n '), params);
  for (const r of rows) add(r.delta && scope.kind === 'node' ? NODE_WIDE : r.prefix, [Number(r.a), Number(r.b), Number(r.c)]);
  return totals;
}

/**
 * Counts per prefix (or NODE_WIDE) over [from, to], from the fewest rollup rows (coverRange), plus
 * registration deltas not folded yet, so registration counts are exact at any moment.
 */
export function sumRange(db: Db, metric: Metric, from: Day, to: Day, scope: Scope): Promise<Map<string, Counts>> {
  return sumRuns(db, metric, coverRange(from, to), from <= to ? { from, to } : undefined, scope);
}

/** All-time counts per prefix (or NODE_WIDE): one row each. */
export function sumAllTime(db: Db, metric: Metric, scope: Scope): Promise<Map<string, Counts>> {
  return sumRuns(db, metric, [{ grain: 't', from: ALL_TIME, to: ALL_TIME }], { from: '0001-01-01', to: '9999-12-31' }, scope);
}

/** Counts per bucket start over [from, to] (from/to aligned to the granularity by the caller). */
export async function seriesByBucket(db: Db, metric: Metric, granularity: Granularity, from: Day, to: Day, scope: Scope): Promise<Map<Day, Counts>> {
  const [a, b, c] = COLUMNS[metric];
  const grain = granularity === 'day' ? 'd' : granularity === 'month' ? 'm' : 'q';
  const params: unknown[] = [from, to];
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const prefixFilter = scopeFilter(scope, param);
  const out = new Map<Day, Counts>();
  const add = (bucket: Day, counts: Counts) => {
    const t = out.get(bucket) ?? [0, 0, 0];
    out.set(bucket, [t[0] + counts[0], t[1] + counts[1], t[2] + counts[2]]);
  };
  // Rollups and unfolded deltas in one statement (one snapshot), as sumRuns reads them.
  const parts = [
    `SELECT to_char(bucket, 'YYYY-MM-DD') AS bucket, sum(${a})::bigint AS a, sum(${b})::bigint AS b, sum(${c})::bigint AS c
     FROM ${TABLE[metric]} WHERE grain = '${grain}' AND ${prefixFilter} AND bucket BETWEEN $1::date AND $2::date
     GROUP BY 1`,
  ];
  if (metric === 'registrations') {
    const trunc = granularity === 'day' ? 'day' : `date_trunc('${granularity}', day)::date`;
    const deltaFilter = scope.kind === 'prefixes' ? 'AND prefix = ANY($3::text[])' : '';
    parts.push(
      `SELECT to_char(${trunc}, 'YYYY-MM-DD') AS bucket, sum(creates)::bigint AS a, sum(updates)::bigint AS b, sum(deletes)::bigint AS c
       FROM stats_registration_deltas WHERE day BETWEEN $1::date AND $2::date ${deltaFilter} GROUP BY 1`,
    );
  }
  const { rows } = await db.query<{ bucket: string; a: string; b: string; c: string }>(parts.join('\n UNION ALL\n '), params);
  for (const r of rows) add(r.bucket, [Number(r.a), Number(r.b), Number(r.c)]);
  return out;
}
