/**
 * The order in which one statement's parts run, on the real Postgres: a create written as ONE
 * statement with its sinks' appends (the all-new path of single writes and batches) must finish
 * its insert, including waiting on a concurrent delete of the same handle, before it appends to
 * the sync outbox. Otherwise its outbox row takes an id, and so a sync position, before the
 * delete's, and the top-level node applies create then delete: the escrow loses a record the
 * node holds.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxSink } from '../../src/federation/outbox-sink.js';
import { runMigrations } from '../../src/infra/migrations.js';
import { insertAllStatement } from '../../src/registry/batch-repository.js';
import { writeThenSinks, type IdentifierChange } from '../../src/registry/change-sink.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await runMigrations(pool);
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const values = [{ index: 1, type: 'URL', data: { format: 'string' as const, value: 'https://example.com/x' }, ttl: 60, timestamp: '2026-11-30T00:00:00.000Z' }];
const change = (op: 'create' | 'delete', suffix: string): IdentifierChange => ({
  op,
  handle: `88.118.8/${suffix}`,
  prefix: '88.118.8',
  suffix,
  version: 1,
  values: op === 'delete' ? null : values,
  previous: null,
  actor: { keyId: 'k', role: 'admin' },
  at: new Date().toISOString(),
});

describe('one statement of a write and its sinks', () => {
  it('appends a create to the outbox only after its insert got past a concurrent delete of the handle', async () => {
    const sink = outboxSink();
    await pool.query("INSERT INTO identifiers (prefix, suffix, handle_values) VALUES ('88.118.8', 'RACE', $1::json)", [JSON.stringify(values)]);
    const deleter = await pool.connect();
    try {
      // The delete: its row is gone (uncommitted), its outbox append not made yet.
      await deleter.query('BEGIN');
      await deleter.query("DELETE FROM identifiers WHERE prefix = '88.118.8' AND suffix = 'RACE'");
      // The create, as the all-new path sends it: it waits on the deleted row.
      const statement = writeThenSinks(insertAllStatement([{ prefix: '88.118.8', suffix: 'RACE', values }]), [sink.statement!([change('create', 'RACE')])!]);
      const creating = pool.query(statement);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { rows } = await pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH s0 AS (INSERT INTO identifiers%'");
        if (rows[0].n === 1) break;
        if (Date.now() > deadline) throw new Error('the create never waited on the delete');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Now the delete appends to the outbox and commits; the create goes on.
      await deleter.query(sink.statement!([change('delete', 'RACE')])!);
      await deleter.query('COMMIT');
      await creating;
    } finally {
      deleter.release();
    }
    const { rows } = await pool.query("SELECT op FROM federation_outbox WHERE suffix = 'RACE' ORDER BY id");
    expect(rows.map((r) => r.op)).toEqual(['d', 'u']);
    expect((await pool.query("SELECT count(*)::int AS n FROM identifiers WHERE suffix = 'RACE'")).rows[0].n).toBe(1);
  });
});
