/** The audit log: entries in the write's transaction, a hash chain that names the first tampered entry. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../src/audit/entry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let ent: { enterpriseId: string; key: string };
let auditorKey: string;
const redisPrefix = newRedisPrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  // A long seal interval: the tests seal when they mean to.
  node = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env: { AUDIT_SEAL_MS: '3600000' } });
  ent = await onboard(node.url, node.adminKey, makeUscc(501), '88.118.5', '审计企业');
  auditorKey = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body.key;
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
  await clearRedisPrefix(redisPrefix);
});

const audit = (query = '', key = auditorKey) => call(node.url, 'GET', `/api/audit${query}`, { key });
const verify = async () => (await audit('/verify')).body;

describe('what is recorded', () => {
  it('records create, update and delete with actor, request id, client IP and digests of before and after', async () => {
    const h = '88.118.5/AUD-1';
    const headers = { 'x-request-id': 'req-audit-create' };
    expect((await call(node.url, 'PUT', `/api/handles/${h}`, { key: ent.key, body: { values: [url('https://a.example/1')] }, headers })).status).toBe(200);
    expect((await call(node.url, 'PUT', `/api/handles/${h}`, { key: ent.key, body: { values: [url('https://a.example/2')] } })).status).toBe(200);
    expect((await call(node.url, 'DELETE', `/api/handles/${h}`, { key: ent.key })).status).toBe(200);
    const items = (await audit(`?target=${encodeURIComponent(h)}`)).body.items.reverse();
    expect(items.map((e: { action: string }) => e.action)).toEqual(['identifier.create', 'identifier.update', 'identifier.delete']);
    const keyId = (await call(node.url, 'GET', `/api/admin/keys?enterpriseId=${ent.enterpriseId}`, { key: node.adminKey })).body.items[0].id;
    for (const e of items) {
      expect(e).toMatchObject({ actorKey: keyId, actorRole: 'enterprise', clientIp: '127.0.0.1', target: h });
    }
    expect(items[0].requestId).toBe('req-audit-create');
    expect(items[0].beforeDigest).toBeNull();
    expect(items[0].afterDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(items[1].beforeDigest).toBe(items[0].afterDigest); // the state after one change is the state before the next
    expect(items[2].beforeDigest).toBe(items[1].afterDigest);
    expect(items[2].afterDigest).toBeNull();
    // The digest is of the stored record, so anyone holding the record can check it.
    const stored = (await call(node.url, 'GET', '/api/handles/88.118.5/AUD-2')).status; // not there
    expect(stored).toBe(404);
    expect(items[0].afterDigest).not.toBe(digestOf({ version: 1, values: [] }));
  });

  it('records nothing for a refused write, and a write and its entry commit together', async () => {
    const before = (await sql.query('SELECT count(*)::int AS n FROM audit_log')).rows[0].n;
    await call(node.url, 'PUT', '/api/handles/88.118.5/AUD-X?overwrite=false', { key: ent.key, body: { values: [url('x')] } });
    expect((await call(node.url, 'PUT', '/api/handles/88.118.5/AUD-X?overwrite=false', { key: ent.key, body: { values: [url('y')] } })).status).toBe(409);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.99/AUD-X', { key: ent.key, body: { values: [url('y')] } })).status).toBe(403);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.5/AUD-Y', { key: ent.key, body: { values: [{ index: 'x' }] } })).status).toBe(400);
    expect((await sql.query('SELECT count(*)::int AS n FROM audit_log')).rows[0].n).toBe(before + 1);
  });

  it('records key changes and admin actions with the admin as actor', async () => {
    const created = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'enterprise', enterpriseId: ent.enterpriseId, label: 'l2' } })).body;
    await call(node.url, 'DELETE', `/api/admin/keys/${created.id}`, { key: node.adminKey });
    const items = (await audit(`?target=${created.id}`)).body.items.reverse();
    expect(items.map((e: { action: string }) => e.action)).toEqual(['key.create', 'key.revoke']);
    expect(items[0].actorRole).toBe('admin');
    expect(JSON.stringify(items)).not.toContain(created.key); // the key itself is never in the log
  });

  it('filters by actor and time range, newest first, and pages with before=', async () => {
    const keyId = (await call(node.url, 'GET', `/api/admin/keys?enterpriseId=${ent.enterpriseId}`, { key: node.adminKey })).body.items[0].id;
    const all = (await audit(`?actor=${keyId}`)).body.items;
    expect(all.length).toBeGreaterThanOrEqual(4);
    expect(all.every((e: { actorKey: string }) => e.actorKey === keyId)).toBe(true);
    const ids = all.map((e: { id: string }) => Number(e.id));
    expect(ids).toEqual([...ids].sort((x, y) => y - x));
    const page2 = (await audit(`?actor=${keyId}&limit=2&before=${all[1].id}`)).body.items;
    expect(page2.map((e: { id: string }) => e.id)).toEqual([all[2].id, all[3].id]);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await audit(`?actor=${keyId}&from=${encodeURIComponent(future)}`)).body.items).toEqual([]);
    expect((await audit(`?actor=${keyId}&to=${encodeURIComponent(future)}`)).body.items.length).toBe(all.length);
    expect((await audit('?from=yesterday')).status).toBe(400);
    expect((await audit('?bogus=1')).status).toBe(400);
  });

  it('is read by auditors and admins only', async () => {
    expect((await audit('', node.adminKey)).status).toBe(200);
    expect((await audit('', ent.key)).status).toBe(403);
    expect((await call(node.url, 'GET', '/api/audit')).status).toBe(401);
    expect((await call(node.url, 'GET', '/api/audit/verify', { key: ent.key })).status).toBe(403);
  });
});

/** Puts back rows set aside in audit_saved, byte for byte (microsecond times included). */
async function restoreSaved(): Promise<void> {
  await sql.query('INSERT INTO audit_log SELECT * FROM audit_saved');
  await sql.query('DROP TABLE audit_saved');
}

describe('the hash chain', () => {
  it('chains concurrent writes without gaps', async () => {
    await Promise.all(Array.from({ length: 40 }, (_, i) =>
      call(node.url, 'PUT', `/api/handles/88.118.5/CONC-${i}`, { key: ent.key, body: { values: [url(`https://a.example/${i}`)] } })));
    const result = await verify();
    expect(result).toMatchObject({ ok: true, unsealed: 0 });
    const { rows } = await sql.query('SELECT min(seq)::int AS lo, max(seq)::int AS hi, count(*)::int AS n, count(seq)::int AS sealed FROM audit_log');
    expect(rows[0]).toMatchObject({ lo: 1, hi: rows[0].n, sealed: rows[0].n });
    expect(result.checked).toBe(rows[0].n);
  });

  it('names a changed entry', async () => {
    const row = (await sql.query('SELECT seq::text AS seq, id::text AS id, target FROM audit_log WHERE seq = 5')).rows[0];
    await sql.query("UPDATE audit_log SET target = '88.118.5/FORGED' WHERE seq = 5");
    try {
      expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: '5', id: row.id } });
    } finally {
      await sql.query('UPDATE audit_log SET target = $1 WHERE seq = 5', [row.target]);
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names the place of a deleted entry', async () => {
    await sql.query('CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE seq = 7');
    await sql.query('DELETE FROM audit_log WHERE seq = 7');
    try {
      const result = await verify();
      expect(result.ok).toBe(false);
      expect(result.firstMismatch.seq).toBe('7');
      expect(result.firstMismatch.reason).toMatch(/missing/);
    } finally {
      await restoreSaved();
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names reordered entries', async () => {
    await sql.query('UPDATE audit_log SET seq = -1 WHERE seq = 3');
    await sql.query('UPDATE audit_log SET seq = 3 WHERE seq = 4');
    await sql.query('UPDATE audit_log SET seq = 4 WHERE seq = -1');
    try {
      expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: '3' } });
    } finally {
      await sql.query('UPDATE audit_log SET seq = -1 WHERE seq = 3');
      await sql.query('UPDATE audit_log SET seq = 3 WHERE seq = 4');
      await sql.query('UPDATE audit_log SET seq = 4 WHERE seq = -1');
    }
    expect((await verify()).ok).toBe(true);
  });

  it('notices the newest entries removed', async () => {
    await sql.query('CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)');
    await sql.query('DELETE FROM audit_log WHERE id = (SELECT id FROM audit_saved)');
    try {
      const result = await verify();
      expect(result.ok).toBe(false);
      expect(result.firstMismatch.reason).toMatch(/head/);
    } finally {
      await restoreSaved();
    }
    expect((await verify()).ok).toBe(true);
  });
});
