/**
 * The audit sealer after the database was dumped and restored into another Postgres server: the
 * entries and the sealer's horizon carry that server's transaction ids, far ahead of this one's.
 * The data is made to look so by moving every stored id forward (a second server is not needed:
 * what the sealer sees is the same).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

const AHEAD = 1_000_000_000;
let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let key: string;
let auditorKey: string;
const redisPrefix = newRedisPrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  // The tests seal when they mean to (verify seals first).
  node = await startTestNode({ databaseUrl: db.url, redis: false, redisKeyPrefix: redisPrefix, env: { AUDIT_SEAL_MS: '3600000' } });
  key = (await onboard(node.url, node.adminKey, makeUscc(507), '88.118.57', '恢复企业')).key;
  auditorKey = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body.key;
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
  await clearRedisPrefix(redisPrefix);
});

const write = (suffix: string) => call(node.url, 'PUT', `/api/handles/88.118.57/${suffix}`, { key, body: { values: [url(`https://r.example/${suffix}`)] } });
const verify = async () => (await call(node.url, 'GET', '/api/audit/verify', { key: auditorKey })).body;
const counts = async () =>
  (await sql.query('SELECT (SELECT count(*)::int FROM audit_log) AS logged, (SELECT count(*)::int FROM audit_seals) AS seals, (SELECT count(DISTINCT entry_id)::int FROM audit_seals) AS sealed')).rows[0];

describe('audit sealing after a restore into another server', () => {
  it('seals the entries written before and after the restore once each, and verify passes', async () => {
    for (const s of ['A1', 'A2', 'A3']) expect((await write(s)).status).toBe(200);
    expect(await verify()).toMatchObject({ ok: true, unsealed: 0 });
    // Committed on the old server but not sealed when the dump was taken.
    for (const s of ['B1', 'B2']) expect((await write(s)).status).toBe(200);
    const unsealedBefore = (await sql.query('SELECT count(*)::int AS n FROM audit_log a WHERE NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.entry_id = a.id)')).rows[0].n;
    expect(unsealedBefore).toBe(2);

    // The restored data: every transaction id, the horizon and the pending list from a server far ahead.
    await sql.query(`UPDATE audit_log SET xid = (xid::text::bigint + ${AHEAD})::text::xid8 WHERE xid <> '0'::xid8`);
    await sql.query(`UPDATE audit_sealer SET horizon = (horizon::text::bigint + ${AHEAD})::text::xid8,
      pending = ARRAY(SELECT (p::text::bigint + ${AHEAD})::text::xid8 FROM unnest(pending) AS p)`);

    // Writes on the new server: transaction ids far below the horizon.
    for (const s of ['C1', 'C2', 'C3']) expect((await write(s)).status).toBe(200);
    const result = await verify();
    expect(result).toMatchObject({ ok: true, unsealed: 0 });
    let c = await counts();
    expect(c).toEqual({ logged: c.logged, seals: c.logged, sealed: c.logged });
    expect(result.checked).toBe(c.logged);

    // Sealing goes on as usual afterwards, without sealing anything twice.
    for (const s of ['D1', 'D2']) expect((await write(s)).status).toBe(200);
    expect(await verify()).toMatchObject({ ok: true, unsealed: 0 });
    c = await counts();
    expect(c).toEqual({ logged: c.logged, seals: c.logged, sealed: c.logged });
    const order = (await sql.query(
      "SELECT a.target FROM audit_seals s JOIN audit_log a ON a.id = s.entry_id WHERE a.target LIKE '88.118.57/%' ORDER BY s.seq",
    )).rows.map((r) => r.target.slice('88.118.57/'.length));
    expect(order).toEqual(['A1', 'A2', 'A3', 'B1', 'B2', 'C1', 'C2', 'C3', 'D1', 'D2']);
  });
});
