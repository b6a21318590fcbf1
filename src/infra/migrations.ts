/**
 * Plain-SQL migrations from migrations/NNNN_name.sql, applied in order, each in its own
 * transaction, recorded with a SHA-256 checksum. An applied migration whose file changed, or a
 * database migrated by a newer build, stops the node instead of running on a schema it does not know.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
// Any constant shared by every process: they queue here instead of racing to create tables.
const MIGRATION_LOCK = 7_340_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new MigrationError(`migration file name ${file} is not NNNN_name.sql`);
    const sql = await readFile(path.join(dir, file), 'utf8');
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version)) throw new MigrationError(`two migrations have version ${version}`);
    migrations.push({ version, name: match[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return migrations;
}

export interface MigrationResult {
  applied: string[];
  current: number;
}

/** Applies pending migrations in order; onApplied hears each one's name as it commits (progress for `snode migrate`). */
export async function runMigrations(pool: pg.Pool, dir = MIGRATIONS_DIR, onApplied?: (name: string) => void): Promise<MigrationResult> {
  const migrations = await loadMigrations(dir);
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const row of rows) {
      const file = known.get(row.version);
      if (!file) {
        throw new MigrationError(
          `the database has migration ${row.version} (${row.name}) that this build does not know: it was migrated by a newer version`,
        );
      }
      if (file.checksum !== row.checksum) {
        throw new MigrationError(
          `migration ${String(row.version).padStart(4, '0')}_${row.name}.sql was edited after it was applied (checksum differs); add a new migration instead`,
        );
      }
    }
    const done = new Set(rows.map((r) => r.version));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      try {
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new MigrationError(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`);
      }
      applied.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
      onApplied?.(applied[applied.length - 1]!);
    }
    const current = migrations.length > 0 ? migrations[migrations.length - 1]!.version : 0;
    return { applied, current };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}
