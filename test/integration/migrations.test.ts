/** The migration runner on a real Postgres: order, checksums, refusal of edited or unknown migrations. */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadMigrations, MIGRATIONS_DIR, MigrationError, runMigrations } from '../../src/infra/migrations.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';

let db: TestDatabase;
let pool: pg.Pool;
let dir: string;

beforeEach(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'snode-migrations-'));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
});

afterEach(async () => {
  await pool.end();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('migrations', () => {
  it('applies every migration once, in order, recording checksums', async () => {
    const files = await loadMigrations(dir);
    const first = await runMigrations(pool, dir);
    expect(first.applied).toEqual(files.map((m) => `${String(m.version).padStart(4, '0')}_${m.name}`));
    const { rows } = await pool.query('SELECT version, checksum FROM schema_migrations ORDER BY version');
    expect(rows).toEqual(files.map((m) => ({ version: m.version, checksum: m.checksum })));
    expect((await runMigrations(pool, dir)).applied).toEqual([]);
    const tables = (await pool.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.tablename);
    expect(tables).toEqual(expect.arrayContaining(['enterprises', 'prefixes', 'api_keys', 'identifiers', 'schema_migrations']));
  });

  it('applies only the new migration on a later run', async () => {
    await runMigrations(pool, dir);
    await writeFile(path.join(dir, '9001_test_extra.sql'), 'CREATE TABLE test_extra (id int);');
    expect((await runMigrations(pool, dir)).applied).toEqual(['9001_test_extra']);
  });

  it('refuses to run when an applied migration was edited', async () => {
    await runMigrations(pool, dir);
    const [file] = (await loadMigrations(dir)).slice(0, 1);
    await writeFile(path.join(dir, `${String(file!.version).padStart(4, '0')}_${file!.name}.sql`), `${file!.sql}\n-- edited\n`);
    await expect(runMigrations(pool, dir)).rejects.toThrow(/was edited after it was applied/);
  });

  it('refuses a database migrated by a newer build', async () => {
    await runMigrations(pool, dir);
    await pool.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')");
    await expect(runMigrations(pool, dir)).rejects.toThrow(MigrationError);
    await expect(runMigrations(pool, dir)).rejects.toThrow(/newer version/);
  });

  it('rolls back a failing migration completely', async () => {
    await runMigrations(pool, dir);
    await writeFile(path.join(dir, '9002_broken.sql'), 'CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;');
    await expect(runMigrations(pool, dir)).rejects.toThrow(/9002 \(broken\) failed/);
    expect((await pool.query("SELECT to_regclass('half_done') AS t")).rows[0].t).toBeNull();
    expect((await pool.query('SELECT count(*)::int AS n FROM schema_migrations WHERE version = 9002')).rows[0].n).toBe(0);
  });

  it('lets processes starting together migrate once', async () => {
    const results = await Promise.all([runMigrations(pool, dir), runMigrations(pool, dir), runMigrations(pool, dir)]);
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, (await loadMigrations(dir)).length]);
  });
});
