/** Enterprise onboarding, prefix states and keys restricted to prefixes, over HTTP on real Postgres. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  node = await startTestNode({ databaseUrl: db.url, redis: false });
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
});

const application = (seed: number, extra: Record<string, unknown> = {}) => ({
  name: `申请企业 ${seed}`,
  uscc: makeUscc(seed),
  contact: { name: '张三', email: `ops${seed}@example.com`, phone: '+86 25 1234 5678' },
  industryCode: 'C3562',
  ...extra,
});
const apply = (body: unknown) => call(node.url, 'POST', '/api/enterprises/apply', { body });
const admin = (method: string, p: string, body?: unknown) => call(node.url, method, `/api/admin${p}`, { key: node.adminKey, body });
const actions = async (target: string) =>
  (await sql.query('SELECT action FROM audit_log WHERE target = $1 ORDER BY id', [target])).rows.map((r) => r.action);

describe('applying', () => {
  it('takes an application from anyone and shows the applicant only its state', async () => {
    const r = await apply(application(601, { requestedPrefix: '88.118.61' }));
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ state: 'pending', prefix: null, reason: null });
    expect(r.body.contact).toBeUndefined();
    const seen = await call(node.url, 'GET', `/api/enterprises/applications/${r.body.id}`);
    expect(seen.body).toMatchObject({ id: r.body.id, state: 'pending' });
    expect(seen.body.uscc).toBeUndefined();
    expect(await actions(r.body.id)).toEqual(['application.submit']);
  });

  it('refuses a second pending application for the same code, bad codes and unknown fields', async () => {
    await apply(application(602));
    expect((await apply(application(602))).body.error.code).toBe('APPLICATION_PENDING');
    expect((await apply(application(603, { uscc: '91320115MA1WXY7Q4X' }))).body.error.code).toBe('INVALID_USCC');
    expect((await apply(application(604, { industryCode: 'Z99' }))).status).toBe(400);
    expect((await apply(application(605, { requestedPrefix: '88.200.1' }))).body.error.code).toBe('PREFIX_OUTSIDE_NODE');
    expect((await apply(application(606, { admin: true }))).body.error.code).toBe('VALIDATION_ERROR');
    expect((await apply({ ...application(607), contact: { name: 'x', email: 'not-an-email' } })).status).toBe(400);
    expect((await apply(application(608, { name: 'x'.repeat(201) }))).status).toBe(400);
    expect((await apply(application(609, { contact: { name: '   ', email: 'a@b.example' } }))).body.error.code).toBe('INVALID_CONTACT');
    const { rows } = await sql.query('SELECT count(*)::int AS n FROM enterprise_applications WHERE uscc = ANY($1)', [[603, 604, 605, 606, 607, 608, 609].map(makeUscc)]);
    expect(rows[0].n).toBe(0);
  });
});

describe('deciding', () => {
  it('approves: the requested prefix, an enterprise and its first key, which writes at once', async () => {
    const applied = (await apply(application(611, { requestedPrefix: '88.118.71' }))).body;
    const r = await admin('POST', `/applications/${applied.id}/approve`);
    expect(r.status).toBe(200);
    expect(r.body.application).toMatchObject({ state: 'approved', prefix: '88.118.71' });
    expect(r.body.prefix).toMatchObject({ prefix: '88.118.71', state: 'active', enterpriseId: r.body.enterprise.id });
    expect(r.body.key.key).toMatch(/^snk_/);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.71/FIRST', { key: r.body.key.key, body: { values: [url('https://x.example')] } })).status).toBe(200);
    expect((await call(node.url, 'GET', `/api/enterprises/applications/${applied.id}`)).body).toMatchObject({ state: 'approved', prefix: '88.118.71' });
    expect(await actions(applied.id)).toEqual(['application.submit', 'application.approve']);
    expect(await actions('88.118.71')).toEqual(['prefix.allocate']);
    expect(await actions('88.118.71/FIRST')).toEqual(['identifier.create']);
    expect(await actions(r.body.key.id)).toEqual(['key.create']);
    expect(await actions(r.body.enterprise.id)).toEqual(['enterprise.create']);
  });

  it('adds a prefix to an enterprise that exists already, shows the admin so, and gives the applicant a key for the new prefix only', async () => {
    const first = (await apply(application(615, { requestedPrefix: '88.118.75' }))).body;
    const owner = (await admin('POST', `/applications/${first.id}/approve`)).body;
    expect((await call(node.url, 'PUT', '/api/handles/88.118.75/OWNED', { key: owner.key.key, body: { values: [url('https://owner.example')] } })).status).toBe(200);
    // Anyone who knows the company's code can apply under it.
    const second = (await apply(application(615, { requestedPrefix: '88.118.76', contact: { name: '李四', email: 'someone@elsewhere.example' } }))).body;
    const pending = (await admin('GET', '/applications?state=pending')).body.items.find((a: { id: string }) => a.id === second.id);
    expect(pending).toMatchObject({ state: 'pending', enterpriseId: owner.enterprise.id });
    const approved = (await admin('POST', `/applications/${second.id}/approve`)).body;
    expect(approved.enterprise.id).toBe(owner.enterprise.id);
    expect(approved.key.prefixes).toEqual(['88.118.76']);
    const theirs = approved.key.key;
    expect((await call(node.url, 'PUT', '/api/handles/88.118.76/NEW', { key: theirs, body: { values: [url('https://new.example')] } })).status).toBe(200);
    const overwrite = await call(node.url, 'PUT', '/api/handles/88.118.75/OWNED', { key: theirs, body: { values: [url('https://evil.example')] } });
    expect(overwrite.status).toBe(403);
    expect((await call(node.url, 'GET', '/api/handles/88.118.75/OWNED')).body.values[0].data.value).toBe('https://owner.example');
    // Nor does it see the enterprise's other keys; the owner's unrestricted key sees both.
    const listed = (key: string) => call(node.url, 'GET', '/api/keys', { key }).then((r) => r.body.items.map((k: { id: string }) => k.id).sort());
    expect(await listed(theirs)).toEqual([approved.key.id]);
    expect(await listed(owner.key.key)).toEqual([owner.key.id, approved.key.id].sort());
  });

  it('allocates the next free code when the requested prefix is taken, or none was asked for', async () => {
    const first = (await apply(application(612, { requestedPrefix: '88.118.71' }))).body; // taken above
    const approved = (await admin('POST', `/applications/${first.id}/approve`)).body;
    const taken = (await sql.query("SELECT prefix FROM prefixes WHERE prefix LIKE '88.118.%'")).rows.map((r) => r.prefix);
    expect(approved.prefix.prefix).toMatch(/^88\.118\.[0-9]+$/);
    expect(approved.prefix.prefix).not.toBe('88.118.71');
    const n = Number(approved.prefix.prefix.split('.')[2]);
    for (let k = 1; k < n; k += 1) expect(taken).toContain(`88.118.${k}`); // the smallest free one
    const second = (await apply(application(613))).body;
    const next = (await admin('POST', `/applications/${second.id}/approve`)).body;
    expect(Number(next.prefix.prefix.split('.')[2])).toBe(n + 1);
  });

  it('rejects with a reason, and a decided application cannot be decided again', async () => {
    const applied = (await apply(application(614))).body;
    expect((await admin('POST', `/applications/${applied.id}/reject`, {})).status).toBe(400);
    const r = await admin('POST', `/applications/${applied.id}/reject`, { reason: '营业执照与名称不符' });
    expect(r.body).toMatchObject({ state: 'rejected', reason: '营业执照与名称不符', prefix: null });
    expect((await admin('POST', `/applications/${applied.id}/approve`)).body.error.code).toBe('APPLICATION_DECIDED');
    expect((await admin('POST', `/applications/${applied.id}/reject`, { reason: 'again' })).body.error.code).toBe('APPLICATION_DECIDED');
    expect((await call(node.url, 'GET', `/api/enterprises/applications/${applied.id}`)).body).toMatchObject({ state: 'rejected', reason: '营业执照与名称不符' });
    expect(await actions(applied.id)).toEqual(['application.submit', 'application.reject']);
    // Rejected, the same enterprise may apply again.
    expect((await apply(application(614))).status).toBe(201);
  });

  it('lists applications by state for admins only', async () => {
    const pending = (await admin('GET', '/applications?state=pending')).body.items;
    expect(pending.length).toBeGreaterThan(0);
    expect(pending.every((a: { state: string }) => a.state === 'pending')).toBe(true);
    expect(pending[0].contact.email).toMatch(/@example\.com$/);
    expect((await call(node.url, 'GET', '/api/admin/applications')).status).toBe(401);
  });

  it('approves two applications at once without giving them the same prefix', async () => {
    const a = (await apply(application(615))).body;
    const b = (await apply(application(616))).body;
    const [ra, rb] = await Promise.all([admin('POST', `/applications/${a.id}/approve`), admin('POST', `/applications/${b.id}/approve`)]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    expect(ra.body.prefix.prefix).not.toBe(rb.body.prefix.prefix);
  });
});

describe('prefix states', () => {
  it('a disabled prefix accepts no writes from anyone, still resolves, and is audited', async () => {
    const ent = await onboard(node.url, node.adminKey, makeUscc(621), '88.118.81');
    await call(node.url, 'PUT', '/api/handles/88.118.81/KEEP', { key: ent.key, body: { values: [url('https://keep.example')] } });
    const off = await admin('PATCH', '/prefixes/88.118.81', { state: 'disabled' });
    expect(off.body).toMatchObject({ prefix: '88.118.81', state: 'disabled' });
    for (const key of [ent.key, node.adminKey]) {
      const w = await call(node.url, 'PUT', '/api/handles/88.118.81/NEW', { key, body: { values: [url('https://new.example')] } });
      expect(w.status).toBe(403);
      expect((await call(node.url, 'DELETE', '/api/handles/88.118.81/KEEP', { key })).status).toBe(403);
    }
    expect((await call(node.url, 'GET', '/api/handles/88.118.81/KEEP')).status).toBe(200);
    await admin('PATCH', '/prefixes/88.118.81', { state: 'active' });
    expect((await call(node.url, 'PUT', '/api/handles/88.118.81/NEW', { key: ent.key, body: { values: [url('https://new.example')] } })).status).toBe(200);
    expect(await actions('88.118.81')).toEqual(['prefix.allocate', 'prefix.disable', 'prefix.enable']);
    expect(await actions('88.118.81/NEW')).toEqual(['identifier.create']);
    expect((await admin('PATCH', '/prefixes/88.118.82', { state: 'disabled' })).status).toBe(404);
    expect((await admin('PATCH', '/prefixes/88.118.81', { state: 'pending' })).status).toBe(400);
  });
});

describe('keys restricted to prefixes', () => {
  it('writes only under the prefixes it names, and only an enterprise key can be restricted to its own', async () => {
    const ent = await onboard(node.url, node.adminKey, makeUscc(631), '88.118.91');
    await admin('POST', `/enterprises/${ent.enterpriseId}/prefixes`, { prefix: '88.118.92' });
    const narrow = (await admin('POST', '/keys', { role: 'enterprise', enterpriseId: ent.enterpriseId, prefixes: ['88.118.92'] })).body;
    expect(narrow.prefixes).toEqual(['88.118.92']);
    const put = (p: string, key: string) => call(node.url, 'PUT', `/api/handles/${p}/R`, { key, body: { values: [url('https://r.example')] } });
    expect((await put('88.118.92', narrow.key)).status).toBe(200);
    expect((await put('88.118.91', narrow.key)).status).toBe(403);
    expect((await put('88.118.91', ent.key)).status).toBe(200); // the unrestricted key: both (the new prefix reached its cached identity)
    expect((await admin('POST', '/keys', { role: 'enterprise', enterpriseId: ent.enterpriseId, prefixes: ['88.118.10'] })).body.error.code).toBe('PREFIX_NOT_OWNED');
    expect((await admin('POST', '/keys', { role: 'auditor', prefixes: ['88.118.92'] })).body.error.code).toBe('PREFIXES_NOT_ALLOWED');
  });
});
