/** Enterprises, prefixes, API keys and the ownership matrix, over HTTP on real Postgres. */
import { createHmac } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let a: { enterpriseId: string; key: string };
let b: { enterpriseId: string; key: string };
let auditorKey: string;

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: false });
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  a = await onboard(node.url, node.adminKey, makeUscc(101), '88.118.10', '甲企业');
  b = await onboard(node.url, node.adminKey, makeUscc(102), '88.118.20', '乙企业');
  auditorKey = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor', label: 'audit office' } })).body.key;
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
});

const admin = (method: string, p: string, body?: unknown, key = node.adminKey) => call(node.url, method, `/api/admin${p}`, { key, body });

describe('first start', () => {
  it('writes the first admin key to DATA_DIR/admin.key with mode 0600', async () => {
    const info = await stat(path.join(node.config.DATA_DIR, 'admin.key'));
    expect(info.mode & 0o777).toBe(0o600);
    expect(node.adminKey).toMatch(/^snk_[A-Za-z0-9_-]{43}$/);
    expect((await admin('GET', '/keys')).status).toBe(200);
  });

  it('does not create another admin key when a node starts on a database that has keys', async () => {
    const again = await startTestNode({ databaseUrl: db.url, redis: false });
    try {
      expect(again.adminKey).toBe(''); // its fresh DATA_DIR got no admin.key
      const { rows } = await sql.query("SELECT count(*)::int AS n FROM api_keys WHERE role = 'admin'");
      expect(rows[0].n).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('stores keys only as HMAC-SHA256 under the server secret', async () => {
    const { rows } = await sql.query('SELECT key_hash, key_hint FROM api_keys');
    const expected = createHmac('sha256', node.config.API_KEY_SECRET).update(node.adminKey).digest();
    expect(rows.some((r) => Buffer.compare(r.key_hash, expected) === 0)).toBe(true);
    const dump = JSON.stringify((await sql.query('SELECT * FROM api_keys')).rows);
    expect(dump).not.toContain(node.adminKey);
    expect(dump).not.toContain(a.key);
  });
});

describe('enterprises and prefixes', () => {
  it('creates an enterprise and validates its unified social credit code', async () => {
    const ok = await admin('POST', '/enterprises', { name: '丙企业', uscc: makeUscc(103).toLowerCase() });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ name: '丙企业', uscc: makeUscc(103), prefixes: [] });
    const bad = await admin('POST', '/enterprises', { name: 'x', uscc: `${makeUscc(104).slice(0, 17)}${makeUscc(104)[17] === '0' ? '1' : '0'}` });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_USCC');
    expect(bad.body.error.requestId).toBeTruthy();
    const dup = await admin('POST', '/enterprises', { name: 'again', uscc: makeUscc(103) });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('ENTERPRISE_EXISTS');
  });

  it('allocates prefixes only one segment under NODE_PREFIX, once', async () => {
    const e = (await admin('POST', '/enterprises', { name: '丁企业', uscc: makeUscc(105) })).body;
    expect((await admin('POST', `/enterprises/${e.id}/prefixes`, { prefix: '88.118.ab' })).body.prefix).toBe('88.118.AB');
    const cases: Array<[string, number, string]> = [
      ['88.118.10', 409, 'PREFIX_TAKEN'],
      ['88.119.5', 400, 'PREFIX_OUTSIDE_NODE'],
      ['88.118.5.1', 400, 'PREFIX_OUTSIDE_NODE'],
      ['88.118', 400, 'PREFIX_OUTSIDE_NODE'],
      ['88.118.5-x', 400, 'INVALID_PREFIX'],
    ];
    for (const [prefix, status, code] of cases) {
      const r = await admin('POST', `/enterprises/${e.id}/prefixes`, { prefix });
      expect(r.status, prefix).toBe(status);
      expect(r.body.error.code, prefix).toBe(code);
    }
    const missing = await admin('POST', '/enterprises/00000000-0000-4000-8000-000000000000/prefixes', { prefix: '88.118.77' });
    expect(missing.status).toBe(404);
    const shown = (await admin('GET', `/enterprises/${e.id}`)).body;
    expect(shown.prefixes).toEqual(['88.118.AB']);
    expect((await admin('GET', '/prefixes')).body.items.map((p: { prefix: string }) => p.prefix)).toEqual(
      expect.arrayContaining(['88.118.10', '88.118.20', '88.118.AB']),
    );
  });
});

describe('API keys', () => {
  it('shows a key once and never again', async () => {
    const created = await admin('POST', '/keys', { role: 'enterprise', enterpriseId: a.enterpriseId, label: 'line 3' });
    expect(created.status).toBe(201);
    expect(created.body.key).toMatch(/^snk_/);
    const listed = (await admin('GET', `/keys?enterpriseId=${a.enterpriseId}`)).body.items;
    const mine = listed.find((k: { id: string }) => k.id === created.body.id);
    expect(mine).toMatchObject({ role: 'enterprise', label: 'line 3', hint: created.body.key.slice(0, 10) });
    expect(JSON.stringify(listed)).not.toContain(created.body.key);
  });

  it('records when a key was last used', async () => {
    const created = (await admin('POST', '/keys', { role: 'auditor' })).body;
    expect(created.lastUsedAt).toBeNull();
    await call(node.url, 'GET', '/api/handles?prefix=88.118.10', { key: created.key });
    let lastUsedAt: string | null = null;
    for (let i = 0; i < 50 && !lastUsedAt; i += 1) {
      lastUsedAt = (await admin('GET', '/keys')).body.items.find((k: { id: string }) => k.id === created.id).lastUsedAt;
      if (!lastUsedAt) await new Promise((r) => setTimeout(r, 20));
    }
    expect(Date.parse(lastUsedAt!)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('refuses ids that are not UUIDs with 400', async () => {
    expect((await admin('GET', '/enterprises/not-a-uuid')).status).toBe(400);
    expect((await admin('DELETE', '/keys/42')).status).toBe(400);
  });

  it('refuses non-admins before reading the body, so the schema is not probed', async () => {
    const anonymous = await call(node.url, 'POST', '/api/admin/enterprises', { body: { name: 'x' } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.text).not.toContain('uscc');
    const enterprise = await call(node.url, 'POST', '/api/admin/enterprises', { key: a.key, body: { name: 'x' } });
    expect(enterprise.status).toBe(403);
  });

  it('refuses inconsistent key requests', async () => {
    expect((await admin('POST', '/keys', { role: 'enterprise' })).body.error.code).toBe('ENTERPRISE_REQUIRED');
    expect((await admin('POST', '/keys', { role: 'admin', enterpriseId: a.enterpriseId })).body.error.code).toBe('ENTERPRISE_NOT_ALLOWED');
    expect((await admin('POST', '/keys', { role: 'root' })).status).toBe(400);
    const unknown = await admin('POST', '/keys', { role: 'enterprise', enterpriseId: '00000000-0000-4000-8000-000000000000' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('ENTERPRISE_NOT_FOUND');
    expect((await admin('POST', '/keys', { role: 'auditor', expiresAt: '2001-01-01T00:00:00Z' })).body.error.code).toBe('INVALID_EXPIRY');
  });

  it('refuses a revoked key at once', async () => {
    const created = (await admin('POST', '/keys', { role: 'enterprise', enterpriseId: a.enterpriseId })).body;
    expect((await call(node.url, 'PUT', '/api/handles/88.118.10/REVOKE-ME', { key: created.key, body: { values: [url('x')] } })).status).toBe(200);
    const revoked = await admin('DELETE', `/keys/${created.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).toBeTruthy();
    const after = await call(node.url, 'PUT', '/api/handles/88.118.10/REVOKE-ME', { key: created.key, body: { values: [url('y')] } });
    expect(after.status).toBe(401);
    expect(after.body.responseCode).toBe(402);
    expect((await admin('DELETE', '/keys/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('refuses a key from the moment it expires, although the key cache knows it', async () => {
    const expiresAt = Date.now() + 1500;
    const created = (await admin('POST', '/keys', { role: 'auditor', expiresAt: new Date(expiresAt).toISOString() })).body;
    expect((await call(node.url, 'GET', '/api/handles?prefix=88.118.10', { key: created.key })).status).toBe(200);
    await new Promise((r) => setTimeout(r, expiresAt - Date.now() + 100));
    expect((await call(node.url, 'GET', '/api/handles?prefix=88.118.10', { key: created.key })).status).toBe(401);
  });

  it('refuses malformed and unknown keys with 401', async () => {
    for (const header of ['Bearer nope', 'Basic abc', `Bearer snk_${'A'.repeat(43)}`, 'Bearer']) {
      const r = await call(node.url, 'GET', '/api/admin/keys', { headers: { authorization: header } });
      expect(r.status, header).toBe(401);
    }
  });
});

describe('authorisation matrix', () => {
  type Who = 'anonymous' | 'admin' | 'enterpriseA' | 'enterpriseB' | 'auditor';
  const keyOf = (who: Who): string | undefined =>
    ({ anonymous: undefined, admin: node.adminKey, enterpriseA: a.key, enterpriseB: b.key, auditor: auditorKey })[who];
  const values = { values: [url('https://a.example/x'), { index: 2, type: 'PRIVATE', data: { format: 'string', value: 'secret' }, permissions: '1100' }] };

  // [who, operation, expected status]
  const matrix: Array<[Who, string, number]> = [
    ['anonymous', 'put-A', 401], ['admin', 'put-A', 200], ['enterpriseA', 'put-A', 200], ['enterpriseB', 'put-A', 403], ['auditor', 'put-A', 403],
    ['admin', 'put-unallocated', 200], ['enterpriseA', 'put-unallocated', 403],
    ['admin', 'put-outside-node', 403], ['enterpriseA', 'put-outside-node', 403],
    ['anonymous', 'delete-A', 401], ['enterpriseB', 'delete-A', 403], ['auditor', 'delete-A', 403],
    ['anonymous', 'list-A', 401], ['admin', 'list-A', 200], ['enterpriseA', 'list-A', 200], ['enterpriseB', 'list-A', 403], ['auditor', 'list-A', 200],
    ['anonymous', 'admin-route', 401], ['enterpriseA', 'admin-route', 403], ['auditor', 'admin-route', 403], ['admin', 'admin-route', 200],
  ];

  const run = (who: Who, op: string) => {
    const key = keyOf(who);
    switch (op) {
      case 'put-A': return call(node.url, 'PUT', '/api/handles/88.118.10/M-1', { key, body: values });
      case 'put-unallocated': return call(node.url, 'PUT', '/api/handles/88.118.99/M-1', { key, body: values });
      case 'put-outside-node': return call(node.url, 'PUT', '/api/handles/88.200.1/M-1', { key, body: values });
      case 'delete-A': return call(node.url, 'DELETE', '/api/handles/88.118.10/M-1', { key });
      case 'list-A': return call(node.url, 'GET', '/api/handles?prefix=88.118.10', { key });
      case 'admin-route': return call(node.url, 'GET', '/api/admin/enterprises', { key });
      default: throw new Error(op);
    }
  };

  it.each(matrix)('%s %s -> %i', async (who, op, status) => {
    const r = await run(who, op);
    expect(r.status).toBe(status);
    if (op.startsWith('put') || op.startsWith('delete') || op.startsWith('list')) {
      if (status === 401) expect(r.body.responseCode).toBe(402);
      if (status === 403) expect(r.body.responseCode).toBe(400);
    }
  });

  it('shows private values only to the prefix owner and admins', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.10/PRIV', { key: a.key, body: values });
    const types = async (who: Who) =>
      (await call(node.url, 'GET', '/api/handles/88.118.10/PRIV', { key: keyOf(who) })).body.values.map((v: { type: string }) => v.type);
    expect(await types('anonymous')).toEqual(['URL', 'HS_ADMIN']);
    expect(await types('enterpriseB')).toEqual(['URL', 'HS_ADMIN']);
    expect(await types('auditor')).toEqual(['URL', 'HS_ADMIN']);
    expect(await types('enterpriseA')).toEqual(['URL', 'PRIVATE', 'HS_ADMIN']);
    expect(await types('admin')).toEqual(['URL', 'PRIVATE', 'HS_ADMIN']);
  });

  it('leaves B untouched by every refused attempt of A', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.20/B-OWN', { key: b.key, body: { values: [url('b')] } });
    expect((await call(node.url, 'PUT', '/api/handles/88.118.20/B-OWN', { key: a.key, body: { values: [url('a')] } })).status).toBe(403);
    expect((await call(node.url, 'DELETE', '/api/handles/88.118.20/B-OWN', { key: a.key })).status).toBe(403);
    const row = (await sql.query("SELECT version, handle_values FROM identifiers WHERE prefix = '88.118.20' AND suffix = 'B-OWN'")).rows[0];
    expect(Number(row.version)).toBe(1);
    expect(row.handle_values[0].data.value).toBe('b');
  });
});
