/** Postgres refusing connections: requests get 503 responseCode 3 (no 500), and the node recovers. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/infra/postgres.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { TEST_DATABASE_URL } from '../helpers/env.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let admin: pg.Client;
let key: string;
const role = `snode_r_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  // A role of its own, so the test can shut this node out without touching anyone else.
  // Not a superuser: connection limits do not bind superusers. Owning the database lets it migrate.
  await admin.query(`CREATE ROLE ${role} LOGIN`);
  await admin.query(`ALTER DATABASE ${db.name} OWNER TO ${role}`);
  const asRole = new URL(db.url);
  asRole.username = role;
  node = await startTestNode({ databaseUrl: asRole.toString(), redis: false, env: { CACHE_MAX_TTL: '0' } });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(901), '88.118.8'));
  await call(node.url, 'PUT', '/api/handles/88.118.8/OUT', { key, body: { values: [url('x')] } });
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
  await admin?.query(`DROP ROLE IF EXISTS ${role}`);
  await admin?.end();
});

describe('database outage', () => {
  it('loses a connection in use without crashing: the query fails, the pool replaces the client', async () => {
    const pool = createPool(db.url, 2);
    try {
      const client = await pool.connect();
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const ended = new Promise((resolve) => client.once('end', resolve));
      // Settled into a value at once: the rejection may come before the test awaits it.
      const running = client.query('SELECT pg_sleep(30)').then(() => undefined, (err: unknown) => err);
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      expect(await running).toBeInstanceOf(Error);
      await ended;
      // Without a listener of its own, the client's 'error' event would have been an uncaught exception.
      client.release();
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
      expect(pool.totalCount).toBe(1);
    } finally {
      await pool.end();
    }
  });


  it('answers 503 with responseCode 3 while Postgres refuses, then recovers', async () => {
    await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
    const resolve = await call(node.url, 'GET', '/api/handles/88.118.8/OUT');
    expect(resolve.status).toBe(503);
    expect(resolve.body).toMatchObject({ responseCode: 3, code: 'SERVICE_UNAVAILABLE' });
    const write = await call(node.url, 'PUT', '/api/handles/88.118.8/OUT-2', { key: node.adminKey, body: { values: [url('y')] } });
    expect(write.status).toBe(503);
    const ready = await call(node.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.postgres).toBe('down');

    await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT -1`);
    expect((await call(node.url, 'GET', '/api/handles/88.118.8/OUT')).status).toBe(200);
    expect((await call(node.url, 'GET', '/readyz')).status).toBe(200);
  });
});
