/** SQL for the identifiers table. Reads by primary key; writes inside the caller's transaction. */
import type { HandleRecord, HandleValue } from '../handle/values.js';
import type { Db, Tx } from '../infra/postgres.js';

export interface LockedRecord {
  version: number;
  values: HandleValue[];
}

/** The current row, locked for the rest of the transaction; undefined when absent. */
export async function lockRecord(tx: Tx, prefix: string, suffix: string): Promise<LockedRecord | undefined> {
  const { rows } = await tx.query<{ version: string; handle_values: HandleValue[] }>(
    'SELECT version, handle_values FROM identifiers WHERE prefix = $1 AND suffix = $2 FOR UPDATE',
    [prefix, suffix],
  );
  const row = rows[0];
  return row ? { version: Number(row.version), values: row.handle_values } : undefined;
}

/** Inserts a new record at version 1; false when a concurrent writer created it first. */
export async function insertRecord(tx: Tx, prefix: string, suffix: string, values: HandleValue[]): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO identifiers (prefix, suffix, handle_values) VALUES ($1, $2, $3)
     ON CONFLICT (prefix, suffix) DO NOTHING`,
    [prefix, suffix, JSON.stringify(values)],
  );
  return rowCount === 1;
}

/** Replaces the values of a locked record; returns the new version. */
export async function replaceRecord(tx: Tx, prefix: string, suffix: string, values: HandleValue[]): Promise<number> {
  const { rows } = await tx.query<{ version: string }>(
    `UPDATE identifiers SET handle_values = $3, version = version + 1, updated_at = now()
     WHERE prefix = $1 AND suffix = $2 RETURNING version`,
    [prefix, suffix, JSON.stringify(values)],
  );
  return Number(rows[0]!.version);
}

export async function deleteRecord(tx: Tx, prefix: string, suffix: string): Promise<void> {
  await tx.query('DELETE FROM identifiers WHERE prefix = $1 AND suffix = $2', [prefix, suffix]);
}

export async function findRecord(db: Db, prefix: string, suffix: string): Promise<HandleRecord | undefined> {
  const { rows } = await db.query<{ version: string; handle_values: HandleValue[] }>({
    name: 'identifiers-find',
    text: 'SELECT version, handle_values FROM identifiers WHERE prefix = $1 AND suffix = $2',
    values: [prefix, suffix],
  });
  const row = rows[0];
  return row ? { handle: `${prefix}/${suffix}`, version: Number(row.version), values: row.handle_values } : undefined;
}

/** Many records by primary key in one statement; keyed by normalised handle. */
export async function findRecords(db: Db, handles: ReadonlyArray<{ prefix: string; suffix: string }>): Promise<Map<string, HandleRecord>> {
  const found = new Map<string, HandleRecord>();
  if (handles.length === 0) return found;
  const { rows } = await db.query<{ prefix: string; suffix: string; version: string; handle_values: HandleValue[] }>({
    name: 'identifiers-find-many',
    text: `SELECT i.prefix, i.suffix, i.version, i.handle_values
           FROM unnest($1::text[], $2::text[]) AS k(prefix, suffix)
           JOIN identifiers i ON i.prefix = k.prefix AND i.suffix = k.suffix`,
    values: [handles.map((h) => h.prefix), handles.map((h) => h.suffix)],
  });
  for (const row of rows) {
    const handle = `${row.prefix}/${row.suffix}`;
    found.set(handle, { handle, version: Number(row.version), values: row.handle_values });
  }
  return found;
}

export async function listHandles(db: Db, prefix: string, limit: number, offset: number): Promise<{ total: number; handles: string[] }> {
  const [count, page] = await Promise.all([
    db.query<{ n: string }>('SELECT count(*) AS n FROM identifiers WHERE prefix = $1', [prefix]),
    db.query<{ suffix: string }>('SELECT suffix FROM identifiers WHERE prefix = $1 ORDER BY suffix LIMIT $2 OFFSET $3', [prefix, limit, offset]),
  ]);
  return { total: Number(count.rows[0]!.n), handles: page.rows.map((r) => `${prefix}/${r.suffix}`) };
}
