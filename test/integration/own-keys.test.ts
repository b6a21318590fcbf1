/** Enterprises manage their own API keys: list, create, revoke; never another enterprise's, never beyond their own rights. */
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

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  node = await startTestNode({ databaseUrl: db.url, redis: false });
  a = await onboard(node.url, node.adminKey, makeUscc(921), '88.118.21', '甲企业');
  await call(node.url, 'POST', `/api/admin/enterprises/${a.enterpriseId}/prefixes`, { key: node.adminKey, body: { prefix: '88.118.22' } });
  b = await onboard(node.url, node.adminKey, makeUscc(923), '88.118.23', '乙企业');
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
});

const keys = (key: string, method = 'GET', path = '/api/keys', body?: unknown) => call(node.url, method, path, { key, ...(body !== undefined ? { body } : {}) });
const put = (key: string, handle: string) => call(node.url, 'PUT', `/api/handles/${handle}`, { key, body: { values: [url('https://k.example')] } });
const adminKey = (body: Record<string, unknown>) => call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'enterprise', ...body } });
const idOf = async (key: string) => (await keys(key)).body.items.find((k: { hint: string }) => key.startsWith(k.hint)).id as string;

describe('an enterprise key', () => {
  it("lists its own enterprise's keys only, never the keys themselves", async () => {
    const second = (await adminKey({ enterpriseId: a.enterpriseId, label: 'line 2' })).body;
    const listed = await keys(a.key);
    expect(listed.status).toBe(200);
    const ids = listed.body.items.map((k: { id: string }) => k.id);
    expect(ids).toContain(second.id);
    expect(listed.body.items.every((k: { enterpriseId: string }) => k.enterpriseId === a.enterpriseId)).toBe(true);
    expect(ids).not.toContain(await idOf(b.key));
    expect(listed.text).not.toContain(a.key);
    expect(listed.text).not.toContain(second.key);
  });

  it('creates an enterprise key of its own enterprise that writes where it may, and nowhere else', async () => {
    const created = await keys(a.key, 'POST', '/api/keys', { label: 'scanner 7' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ role: 'enterprise', enterpriseId: a.enterpriseId, label: 'scanner 7', prefixes: null });
    expect((await put(created.body.key, '88.118.21/OWN-1')).status).toBe(200);
    expect((await put(created.body.key, '88.118.23/OWN-1')).status).toBe(403);
    const audited = (await sql.query("SELECT actor_key, actor_role FROM audit_log WHERE action = 'key.create' AND target = $1", [created.body.id])).rows;
    expect(audited).toEqual([{ actor_key: await idOf(a.key), actor_role: 'enterprise' }]);
  });

  it('creates no key with a higher role, for another enterprise, or for prefixes it does not hold', async () => {
    for (const role of ['admin', 'auditor']) {
      const r = await keys(a.key, 'POST', '/api/keys', { role });
      expect(r.status, role).toBe(403);
      expect(r.body.error.code).toBe('ROLE_NOT_ALLOWED');
    }
    expect((await keys(a.key, 'POST', '/api/keys', { enterpriseId: b.enterpriseId })).status).toBe(400); // not a field of this route
    const foreign = await keys(a.key, 'POST', '/api/keys', { prefixes: ['88.118.23'] });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe('PREFIX_NOT_OWNED');
    const restricted = await keys(a.key, 'POST', '/api/keys', { prefixes: ['88.118.22'] });
    expect(restricted.status).toBe(201);
    expect(restricted.body.prefixes).toEqual(['88.118.22']);
    expect((await put(restricted.body.key, '88.118.21/OWN-2')).status).toBe(403);
    expect((await put(restricted.body.key, '88.118.22/OWN-2')).status).toBe(200);
  });

  it('restricted to some prefixes, gives no key more than those and revokes only keys within them', async () => {
    const narrow = (await adminKey({ enterpriseId: a.enterpriseId, prefixes: ['88.118.21'] })).body;
    const child = await keys(narrow.key, 'POST', '/api/keys', {});
    expect(child.status).toBe(201);
    expect(child.body.prefixes).toEqual(['88.118.21']); // its own restriction, by default
    expect((await put(child.body.key, '88.118.22/OWN-3')).status).toBe(403);
    expect((await keys(narrow.key, 'POST', '/api/keys', { prefixes: ['88.118.22'] })).body.error.code).toBe('PREFIX_NOT_OWNED');
    const wide = await keys(narrow.key, 'DELETE', `/api/keys/${await idOf(a.key)}`);
    expect(wide.status).toBe(403);
    expect(wide.body.error.code).toBe('KEY_NOT_OWNED');
    expect((await put(a.key, '88.118.21/STILL')).status).toBe(200);
    expect((await keys(narrow.key, 'DELETE', `/api/keys/${child.body.id}`)).status).toBe(200);
  });

  it('that expires gives keys expiring no later', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const expiring = (await adminKey({ enterpriseId: a.enterpriseId, expiresAt })).body;
    const child = await keys(expiring.key, 'POST', '/api/keys', {});
    expect(child.status).toBe(201);
    expect(child.body.expiresAt).toBe(expiresAt);
    const later = await keys(expiring.key, 'POST', '/api/keys', { expiresAt: new Date(Date.now() + 2 * 86_400_000).toISOString() });
    expect(later.status).toBe(403);
    expect(later.body.error.code).toBe('EXPIRY_NOT_ALLOWED');
    const sooner = new Date(Date.now() + 3_600_000).toISOString();
    expect((await keys(expiring.key, 'POST', '/api/keys', { expiresAt: sooner })).body.expiresAt).toBe(sooner);
    // An empty or unreadable expiry is refused, never taken as "does not expire".
    for (const bad of ['', 'soon']) {
      const refused = await keys(expiring.key, 'POST', '/api/keys', { expiresAt: bad });
      expect(refused.status, refused.text).toBe(400);
      expect(refused.body.error.code).toBe('INVALID_EXPIRY');
    }
    const admin = await adminKey({ enterpriseId: a.enterpriseId, expiresAt: '' });
    expect(admin.status).toBe(400);
    expect(admin.body.error.code).toBe('INVALID_EXPIRY');
  });

  it("revokes its own enterprise's keys, audited, and never another enterprise's", async () => {
    const bKeyId = await idOf(b.key);
    const other = await keys(a.key, 'DELETE', `/api/keys/${bKeyId}`);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('KEY_NOT_FOUND');
    expect((await put(b.key, '88.118.23/B-STILL')).status).toBe(200);
    expect((await sql.query('SELECT revoked_at FROM api_keys WHERE id = $1', [bKeyId])).rows[0].revoked_at).toBeNull();

    const spare = (await keys(a.key, 'POST', '/api/keys', { label: 'spare' })).body;
    expect((await put(spare.key, '88.118.21/SPARE')).status).toBe(200);
    const revoked = await keys(a.key, 'DELETE', `/api/keys/${spare.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).not.toBeNull();
    expect((await put(spare.key, '88.118.21/SPARE')).status).toBe(401);
    const audited = (await sql.query("SELECT actor_key, actor_role, before_digest, after_digest FROM audit_log WHERE action = 'key.revoke' AND target = $1", [spare.id])).rows;
    expect(audited).toHaveLength(1);
    expect(audited[0]).toMatchObject({ actor_key: await idOf(a.key), actor_role: 'enterprise' });
    expect(audited[0].before_digest).not.toBe(audited[0].after_digest);
  });

  it('is the only role these routes take: admins use /api/admin/keys', async () => {
    const auditor = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body.key;
    expect((await keys(auditor)).status).toBe(403);
    expect((await keys(node.adminKey, 'POST', '/api/keys', {})).status).toBe(403);
    expect((await call(node.url, 'GET', '/api/keys')).status).toBe(401);
  });
});
