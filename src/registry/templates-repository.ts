/** SQL for metadata templates. Reads take the pool or a transaction; writes run in the caller's transaction. */
import type { Db, Tx } from '../infra/postgres.js';
import type { Template, TemplateItem } from './templates-check.js';

interface Row {
  prefix: string;
  version: string;
  description: string;
  items: TemplateItem[];
  revision: number;
  in_use: boolean;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'prefix, version, description, items, revision, in_use, created_at, updated_at';
const T_COLUMNS = COLUMNS.split(', ').map((c) => `t.${c}`).join(', ');

function toTemplate(row: Row): Template {
  return {
    prefix: row.prefix,
    version: row.version,
    description: row.description,
    items: row.items,
    revision: row.revision,
    inUse: row.in_use,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export async function find(db: Db, prefix: string, version: string): Promise<Template | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM templates WHERE prefix = $1 AND version = $2`, [prefix, version]);
  return rows[0] ? toTemplate(rows[0]) : undefined;
}

/** Many versions in one statement (a batch's or an import chunk's templates). */
export async function findMany(db: Db, keys: ReadonlyArray<{ prefix: string; version: string }>): Promise<Template[]> {
  if (keys.length === 0) return [];
  const { rows } = await db.query<Row>(
    `SELECT ${T_COLUMNS} FROM templates t
     JOIN unnest($1::text[], $2::text[]) AS k(prefix, version) ON t.prefix = k.prefix AND t.version = k.version`,
    [keys.map((k) => k.prefix), keys.map((k) => k.version)],
  );
  return rows.map(toTemplate);
}

export async function list(db: Db, prefix: string, limit: number, offset: number): Promise<{ total: number; templates: Template[] }> {
  const [count, page] = await Promise.all([
    countVersions(db, prefix),
    db.query<Row>(`SELECT ${COLUMNS} FROM templates WHERE prefix = $1 ORDER BY created_at, version LIMIT $2 OFFSET $3`, [prefix, limit, offset]),
  ]);
  return { total: count, templates: page.rows.map(toTemplate) };
}

export async function countVersions(db: Db, prefix: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM templates WHERE prefix = $1', [prefix]);
  return rows[0]!.n;
}

export async function lock(tx: Tx, prefix: string, version: string): Promise<Template | undefined> {
  const { rows } = await tx.query<Row>(`SELECT ${COLUMNS} FROM templates WHERE prefix = $1 AND version = $2 FOR UPDATE`, [prefix, version]);
  return rows[0] ? toTemplate(rows[0]) : undefined;
}

export async function insert(tx: Tx, prefix: string, version: string, description: string, items: readonly TemplateItem[]): Promise<Template | undefined> {
  const { rows } = await tx.query<Row>(
    `INSERT INTO templates (prefix, version, description, items) VALUES ($1, $2, $3, $4)
     ON CONFLICT (prefix, version) DO NOTHING RETURNING ${COLUMNS}`,
    [prefix, version, description, JSON.stringify(items)],
  );
  return rows[0] ? toTemplate(rows[0]) : undefined;
}

export async function replace(tx: Tx, prefix: string, version: string, description: string, items: readonly TemplateItem[]): Promise<Template> {
  const { rows } = await tx.query<Row>(
    `UPDATE templates SET description = $3, items = $4, revision = revision + 1, updated_at = now()
     WHERE prefix = $1 AND version = $2 RETURNING ${COLUMNS}`,
    [prefix, version, description, JSON.stringify(items)],
  );
  return toTemplate(rows[0]!);
}

/**
 * Inside a record write: locks the named versions (in key order, so writers cannot deadlock) and
 * returns their current revision and state. A template change waits for the write, and the write
 * for a template change in progress.
 */
export async function lockForUse(tx: Tx, keys: ReadonlyArray<{ prefix: string; version: string }>): Promise<Array<{ prefix: string; version: string; revision: number; inUse: boolean }>> {
  const { rows } = await tx.query<{ prefix: string; version: string; revision: number; in_use: boolean }>(
    `SELECT t.prefix, t.version, t.revision, t.in_use FROM templates t
     JOIN unnest($1::text[], $2::text[]) AS k(prefix, version) ON t.prefix = k.prefix AND t.version = k.version
     ORDER BY t.prefix, t.version FOR UPDATE OF t`,
    [keys.map((k) => k.prefix), keys.map((k) => k.version)],
  );
  return rows.map((r) => ({ prefix: r.prefix, version: r.version, revision: r.revision, inUse: r.in_use }));
}

/** Marks locked versions used; returns how many were not already. */
export async function markUsed(tx: Tx, keys: ReadonlyArray<{ prefix: string; version: string }>): Promise<number> {
  const { rowCount } = await tx.query(
    `UPDATE templates t SET in_use = true, first_used_at = now()
     FROM unnest($1::text[], $2::text[]) AS k(prefix, version)
     WHERE t.prefix = k.prefix AND t.version = k.version AND NOT t.in_use`,
    [keys.map((k) => k.prefix), keys.map((k) => k.version)],
  );
  return rowCount ?? 0;
}
