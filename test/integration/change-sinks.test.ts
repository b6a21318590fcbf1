/** Change sinks run inside the write's transaction: they see every write, and their failure undoes it. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeSink, IdentifierChange } from '../../src/registry/change-sink.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let key: string;
let failNext = false;

/** Appends each change to a table of its own, in the caller's transaction. */
const journal: ChangeSink = {
  name: 'test-journal',
  async record(tx, changes: readonly IdentifierChange[]) {
    for (const c of changes) {
      await tx.query('INSERT INTO test_journal (op, handle, version, had_previous) VALUES ($1, $2, $3, $4)', [
        c.op,
        c.handle,
        c.version,
        c.previous !== null,
      ]);
    }
    if (failNext) {
      failNext = false;
      throw new Error('journal disk full: internal detail that must not leak');
    }
  },
};

/** A sink that gives its work as one statement: the registry sends it with the audit and statistics sinks' in one query. */
const statementJournal: ChangeSink = {
  name: 'test-statement-journal',
  record: () => Promise.reject(new Error('a sink with a statement is never called through record()')),
  statement: (changes) => ({
    name: 'test-statement-journal',
    text: 'INSERT INTO test_statement_journal (op, handle, version) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])',
    values: [changes.map((c) => c.op), changes.map((c) => c.handle), changes.map((c) => c.version)],
  }),
};

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  node = await startTestNode({ databaseUrl: db.url, redis: true, sinks: [journal, statementJournal] });
  await sql.query('CREATE TABLE test_journal (id serial, op text, handle text, version bigint, had_previous boolean)');
  // A handle with FAIL in it makes the combined statement fail.
  await sql.query("CREATE TABLE test_statement_journal (id serial, op text, handle text CHECK (handle NOT LIKE '%FAIL%'), version bigint)");
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(401), '88.118.8'));
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  if (node) await clearRedisPrefix(node.config.REDIS_KEY_PREFIX);
  await db?.drop();
});

describe('change sinks', () => {
  it('receive create, update and delete with versions and the previous record', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.8/S1', { key, body: { values: [url('a')] } });
    await call(node.url, 'PUT', '/api/handles/88.118.8/S1', { key, body: { values: [url('b')] } });
    await call(node.url, 'DELETE', '/api/handles/88.118.8/S1', { key });
    const { rows } = await sql.query("SELECT op, version::int, had_previous FROM test_journal WHERE handle = '88.118.8/S1' ORDER BY id");
    expect(rows).toEqual([
      { op: 'create', version: 1, had_previous: false },
      { op: 'update', version: 2, had_previous: true },
      { op: 'delete', version: 2, had_previous: true },
    ]);
  });

  it('see nothing of refused writes', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.8/S2', { key, body: { values: [url('a'), url('b', 1)] } });
    await call(node.url, 'PUT', '/api/handles/88.118.9/S2', { key, body: { values: [url('a')] } });
    const { rows } = await sql.query("SELECT count(*)::int AS n FROM test_journal WHERE handle LIKE '%/S2'");
    expect(rows[0].n).toBe(0);
  });

  it('roll the write back when they fail, and the client gets a 500 that leaks nothing', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.8/S3', { key, body: { values: [url('kept')] } });
    failNext = true;
    const r = await call(node.url, 'PUT', '/api/handles/88.118.8/S3', { key, body: { values: [url('lost')] } });
    expect(r.status).toBe(500);
    expect(r.body.responseCode).toBe(2);
    expect(r.text).not.toContain('disk full');
    const row = (await sql.query("SELECT version::int, handle_values FROM identifiers WHERE suffix = 'S3'")).rows[0];
    expect(row.version).toBe(1);
    expect(row.handle_values[0].data.value).toBe('kept');
    expect((await call(node.url, 'GET', '/api/handles/88.118.8/S3')).body.values[0].data.value).toBe('kept');
    const journalRows = (await sql.query("SELECT op FROM test_journal WHERE handle = '88.118.8/S3' ORDER BY id")).rows;
    expect(journalRows.map((j) => j.op)).toEqual(['create']);
  });

  it('run statement sinks together with the audit and statistics sinks in one statement, each with its own parameters', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.8/S4', { key, body: { values: [url('a')] } });
    await call(node.url, 'PUT', '/api/handles/88.118.8/S4', { key, body: { values: [url('b')] } });
    const { rows } = await sql.query("SELECT op, handle, version::int FROM test_statement_journal WHERE handle = '88.118.8/S4' ORDER BY id");
    expect(rows).toEqual([{ op: 'create', handle: '88.118.8/S4', version: 1 }, { op: 'update', handle: '88.118.8/S4', version: 2 }]);
    const audited = (await sql.query("SELECT action FROM audit_log WHERE target = '88.118.8/S4' ORDER BY id")).rows.map((r) => r.action);
    expect(audited).toEqual(['identifier.create', 'identifier.update']);
  });

  it('roll the write back, its audit entry included, when the combined statement fails', async () => {
    const r = await call(node.url, 'PUT', '/api/handles/88.118.8/FAIL-1', { key, body: { values: [url('a')] } });
    expect(r.status).toBe(500);
    expect((await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE suffix = 'FAIL-1'")).rows[0].n).toBe(0);
    expect((await sql.query("SELECT count(*)::int AS n FROM audit_log WHERE target = '88.118.8/FAIL-1'")).rows[0].n).toBe(0);
    expect((await sql.query("SELECT count(*)::int AS n FROM test_journal WHERE handle = '88.118.8/FAIL-1'")).rows[0].n).toBe(0);
  });
});
