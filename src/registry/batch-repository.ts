/**
 * SQL for batches: each step is one statement over arrays (`unnest`), whatever the batch size,
 * inside the caller's transaction.
 */
import type { HandleValue } from '../handle/values.js';
import type { Tx } from '../infra/postgres.js';
import type { LockedRecord } from './repository.js';

export interface Key {
  prefix: string;
  suffix: string;
}

const handleOf = (prefix: string, suffix: string): string => `${prefix}/${suffix}`;

/**
 * The existing rows among `keys`, locked for the rest of the transaction, keyed by handle. Rows
 * are locked in primary-key order, so two batches over the same handles cannot deadlock.
 */
export async function lockMany(tx: Tx, keys: readonly Key[]): Promise<Map<string, LockedRecord>> {
  const found = new Map<string, LockedRecord>();
  if (keys.length === 0) return found;
  const { rows } = await tx.query<{ prefix: string; suffix: string; version: string; handle_values: HandleValue[] }>(
    `SELECT i.prefix, i.suffix, i.version, i.handle_values
     FROM identifiers i JOIN unnest($1::text[], $2::text[]) AS k(prefix, suffix)
       ON i.prefix = k.prefix AND i.suffix = k.suffix
     ORDER BY i.prefix, i.suffix
     FOR UPDATE OF i`,
    [keys.map((k) => k.prefix), keys.map((k) => k.suffix)],
  );
  for (const row of rows) found.set(handleOf(row.prefix, row.suffix), { version: Number(row.version), values: row.handle_values });
  return found;
}

/** Inserts new records at version 1; returns the handles inserted (others were created meanwhile). */
export async function insertMany(tx: Tx, rows: ReadonlyArray<Key & { values: HandleValue[] }>): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const result = await tx.query<{ prefix: string; suffix: string }>(
    `INSERT INTO identifiers (prefix, suffix, handle_values)
     SELECT * FROM unnest($1::text[], $2::text[], $3::json[])
     ON CONFLICT (prefix, suffix) DO NOTHING
     RETURNING prefix, suffix`,
    [rows.map((r) => r.prefix), rows.map((r) => r.suffix), rows.map((r) => JSON.stringify(r.values))],
  );
  return new Set(result.rows.map((r) => handleOf(r.prefix, r.suffix)));
}

/** Replaces the values of locked records; returns each handle's new version. */
export async function replaceMany(tx: Tx, rows: ReadonlyArray<Key & { values: HandleValue[] }>): Promise<Map<string, number>> {
  if (rows.length === 0) return new Map();
  const result = await tx.query<{ prefix: string; suffix: string; version: string }>(
    `UPDATE identifiers i SET handle_values = k.handle_values, version = i.version + 1, updated_at = now()
     FROM unnest($1::text[], $2::text[], $3::json[]) AS k(prefix, suffix, handle_values)
     WHERE i.prefix = k.prefix AND i.suffix = k.suffix
     RETURNING i.prefix, i.suffix, i.version`,
    [rows.map((r) => r.prefix), rows.map((r) => r.suffix), rows.map((r) => JSON.stringify(r.values))],
  );
  return new Map(result.rows.map((r) => [handleOf(r.prefix, r.suffix), Number(r.version)]));
}

/** Deletes locked records. */
export async function deleteMany(tx: Tx, keys: readonly Key[]): Promise<number> {
  if (keys.length === 0) return 0;
  const result = await tx.query(
    `DELETE FROM identifiers i USING unnest($1::text[], $2::text[]) AS k(prefix, suffix)
     WHERE i.prefix = k.prefix AND i.suffix = k.suffix`,
    [keys.map((k) => k.prefix), keys.map((k) => k.suffix)],
  );
  return result.rowCount ?? 0;
}
