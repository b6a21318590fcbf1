/**
 * SQL for batches: each step is one statement whatever the batch size, inside the caller's
 * transaction. Rows travel as one JSON parameter read by json_to_recordset(): one native
 * JSON.stringify, where Postgres array parameters (`unnest`) had pg escape every element of
 * every column in JavaScript, the long JSON texts of values most of all (a third of the node's
 * time per identifier in bench register-batch).
 */
import type { HandleValue } from '../handle/values.js';
import type { Tx } from '../infra/postgres.js';
import type { SinkStatement } from './change-sink.js';
import type { LockedRecord } from './repository.js';

export interface Key {
  prefix: string;
  suffix: string;
}

/** A record's row: its values, and their JSON text when the caller has made it already. */
export type Row = Key & { values: HandleValue[]; json?: string };

const handleOf = (prefix: string, suffix: string): string => `${prefix}/${suffix}`;

/**
 * The existing rows among `keys`, locked for the rest of the transaction, keyed by handle. Rows
 * are locked in primary-key order, so two batches over the same handles cannot deadlock.
 */
export async function lockMany(tx: Tx, keys: readonly Key[]): Promise<Map<string, LockedRecord>> {
  const found = new Map<string, LockedRecord>();
  if (keys.length === 0) return found;
  const { rows } = await tx.query<{ prefix: string; suffix: string; version: string; handle_values: HandleValue[] }>({
    name: 'batch-lock',
    text: `SELECT i.prefix, i.suffix, i.version, i.handle_values
     FROM identifiers i JOIN json_to_recordset($1::json) AS k(p text, s text)
       ON i.prefix = k.p AND i.suffix = k.s
     ORDER BY i.prefix, i.suffix
     FOR UPDATE OF i`,
    values: [keysJson(keys)],
  });
  for (const row of rows) found.set(handleOf(row.prefix, row.suffix), { version: Number(row.version), values: row.handle_values });
  return found;
}

/**
 * Rows in primary-key order (any one order all writers share): two transactions inserting the
 * same new handles then wait for each other in one direction only, never crosswise (a deadlock).
 */
function inKeyOrder<T extends Key>(rows: readonly T[]): T[] {
  return [...rows].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : a.suffix < b.suffix ? -1 : a.suffix > b.suffix ? 1 : 0));
}

/** Inserts new records at version 1; returns the handles inserted (others were created meanwhile). */
export async function insertMany(tx: Tx, unordered: ReadonlyArray<Row>): Promise<Set<string>> {
  if (unordered.length === 0) return new Set();
  const rows = inKeyOrder(unordered);
  const result = await tx.query<{ prefix: string; suffix: string }>({
    name: 'batch-insert',
    text: `INSERT INTO identifiers (prefix, suffix, handle_values)
     SELECT r.p, r.s, r.v::json FROM json_to_recordset($1::json) AS r(p text, s text, v text)
     ON CONFLICT (prefix, suffix) DO NOTHING
     RETURNING prefix, suffix`,
    values: [rowsJson(rows)],
  });
  return new Set(result.rows.map((r) => handleOf(r.prefix, r.suffix)));
}

/**
 * The insert of records that must all be new, as a statement to send with the change sinks' (no
 * ON CONFLICT: a handle that exists fails the whole statement with a unique violation).
 */
export function insertAllStatement(unordered: ReadonlyArray<Row>): SinkStatement {
  const rows = inKeyOrder(unordered);
  return {
    name: 'group-insert-all',
    text: `INSERT INTO identifiers (prefix, suffix, handle_values)
     SELECT r.p, r.s, r.v::json FROM json_to_recordset($1::json) AS r(p text, s text, v text)`,
    values: [rowsJson(rows)],
  };
}

/** Is this the unique violation of a handle that exists? */
export const isHandleTaken = (err: unknown): boolean =>
  (err as { code?: unknown })?.code === '23505' && (err as { constraint?: unknown }).constraint === 'identifiers_pkey';

/** Replaces the values of locked records; returns each handle's new version. */
export async function replaceMany(tx: Tx, rows: ReadonlyArray<Row>): Promise<Map<string, number>> {
  if (rows.length === 0) return new Map();
  const result = await tx.query<{ prefix: string; suffix: string; version: string }>({
    name: 'batch-replace',
    text: `UPDATE identifiers i SET handle_values = k.v::json, version = i.version + 1, updated_at = now()
     FROM json_to_recordset($1::json) AS k(p text, s text, v text)
     WHERE i.prefix = k.p AND i.suffix = k.s
     RETURNING i.prefix, i.suffix, i.version`,
    values: [rowsJson(rows)],
  });
  return new Map(result.rows.map((r) => [handleOf(r.prefix, r.suffix), Number(r.version)]));
}

/** Deletes locked records. */
export async function deleteMany(tx: Tx, keys: readonly Key[]): Promise<number> {
  if (keys.length === 0) return 0;
  const result = await tx.query({
    name: 'batch-delete',
    text: `DELETE FROM identifiers i USING json_to_recordset($1::json) AS k(p text, s text)
     WHERE i.prefix = k.p AND i.suffix = k.s`,
    values: [keysJson(keys)],
  });
  return result.rowCount ?? 0;
}

/** `[{"p":prefix,"s":suffix},...]` for json_to_recordset. */
function keysJson(keys: readonly Key[]): string {
  return JSON.stringify(keys.map((k) => ({ p: k.prefix, s: k.suffix })));
}

/**
 * `[{"p":prefix,"s":suffix,"v":"<values as JSON text>"},...]`. The values travel as a JSON
 * string, read as text and cast to json, so each record's handle_values is stored exactly as
 * JSON.stringify(values) writes it. Not as a nested json column: json_to_recordset unescapes every
 * string of the document, and a value holding U+0000 or a lone surrogate (both valid JSON
 * escapes, which json keeps as written) failed the whole statement (22P05, 22P02).
 */
function rowsJson(rows: ReadonlyArray<Row>): string {
  return JSON.stringify(rows.map((r) => ({ p: r.prefix, s: r.suffix, v: r.json ?? JSON.stringify(r.values) })));
}
