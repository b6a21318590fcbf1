/**
 * Refused requests (401, 403) reach the audit log as tallies per status, code, client IP and key,
 * and a flood of them costs a bounded number of entries.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let ent: { enterpriseId: string; key: string };
const MAX_SOURCES = 15;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  node = await startTestNode({
    databaseUrl: db.url,
    redis: false,
    // The tests write the tallies when they mean to; the proxy header lets them be many clients.
    env: { AUDIT_REFUSED_WINDOW_MS: '3600000', AUDIT_REFUSED_MAX_SOURCES: String(MAX_SOURCES), TRUST_PROXY: '127.0.0.1' },
  });
  ent = await onboard(node.url, node.adminKey, makeUscc(941), '88.118.41');
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
});

const from = (ip: string) => ({ 'x-forwarded-for': ip });
const randomKey = () => `snk_${randomBytes(32).toString('base64url')}`;

/** Writes the tallies once every refusal sent has been counted (counting happens after the answer is sent). */
async function flush(sent: number): Promise<void> {
  await vi.waitFor(() => expect(node.node.app.refusals.pending()).toBe(sent), { timeout: 10_000 });
  await node.node.app.refusals.flush();
}

type Refusal = { actor_key: string | null; actor_role: string; client_ip: string | null; target: string; request_id: string; detail: Record<string, unknown> };
const refusals = async (): Promise<Refusal[]> =>
  (await sql.query("SELECT actor_key, actor_role, client_ip, target, request_id, detail FROM audit_log WHERE action = 'auth.refused' ORDER BY id")).rows;

describe('refused requests in the audit log', () => {
  it('records bad, revoked and expired keys, missing keys and forbidden calls, one entry per tally', async () => {
    const revoked = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body;
    await call(node.url, 'DELETE', `/api/admin/keys/${revoked.id}`, { key: node.adminKey });
    const expired = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor', expiresAt: new Date(Date.now() + 3_600_000).toISOString() } })).body;
    await sql.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [expired.id]);
    const bad = randomKey();

    const sent = [
      ...(await Promise.all(Array.from({ length: 5 }, () => call(node.url, 'GET', '/api/audit', { key: bad, headers: from('203.0.113.10') })))),
      await call(node.url, 'GET', '/api/audit', { key: revoked.key, headers: from('203.0.113.11') }),
      await call(node.url, 'GET', '/api/stats/overview', { key: expired.key, headers: from('203.0.113.12') }),
      await call(node.url, 'GET', '/api/admin/keys', { headers: { ...from('203.0.113.13'), 'x-request-id': 'no-key-1' } }),
      await call(node.url, 'GET', '/api/admin/keys', { key: ent.key, headers: from('203.0.113.14') }),
      await call(node.url, 'PUT', '/api/handles/88.118.99/X', { key: ent.key, headers: from('203.0.113.14'), body: { values: [url('https://x.example')] } }),
    ];
    expect(sent.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 401, 401, 401, 403, 403]);
    // Answers that are not refusals are not counted.
    expect((await call(node.url, 'GET', '/api/audit', { key: node.adminKey, headers: from('203.0.113.15') })).status).toBe(200);
    await flush(sent.length);

    const entries = await refusals();
    expect(entries).toHaveLength(6);
    const byIp = new Map(entries.map((e) => [e.client_ip, e]));
    expect(byIp.get('203.0.113.10')).toMatchObject({ actor_key: null, target: 'GET /api/audit', detail: { status: 401, code: 'INVALID_API_KEY', count: 5, key: 'unknown' } });
    expect(byIp.get('203.0.113.11')).toMatchObject({ actor_key: revoked.id, actor_role: 'auditor', detail: { status: 401, code: 'INVALID_API_KEY', count: 1, key: 'revoked' } });
    expect(byIp.get('203.0.113.12')).toMatchObject({ actor_key: expired.id, target: 'GET /api/stats/overview', detail: { key: 'expired' } });
    expect(byIp.get('203.0.113.13')).toMatchObject({ actor_key: null, actor_role: 'anonymous', request_id: 'no-key-1', detail: { status: 401, code: 'AUTHENTICATION_NEEDED' } });
    const forbidden = entries.filter((e) => e.client_ip === '203.0.113.14');
    expect(forbidden.map((e) => e.detail.code).sort()).toEqual(['PREFIX_NOT_OWNED', 'ROLE_NOT_ALLOWED']);
    const keyId = (await call(node.url, 'GET', `/api/admin/keys?enterpriseId=${ent.enterpriseId}`, { key: node.adminKey })).body.items[0].id;
    for (const e of forbidden) expect(e).toMatchObject({ actor_key: keyId, actor_role: 'enterprise', detail: { status: 403, count: 1 } });
    expect(forbidden.find((e) => e.detail.code === 'PREFIX_NOT_OWNED')!.target).toBe('PUT /api/handles/*');
    expect(JSON.stringify(entries)).not.toContain(bad.slice(4, 20)); // no part of a presented key is kept
    for (const e of entries) expect(Date.parse(e.detail.firstAt as string)).toBeLessThanOrEqual(Date.parse(e.detail.lastAt as string));
    // They are entries like any other: sealed into the chain.
    expect((await call(node.url, 'GET', '/api/audit/verify', { key: node.adminKey })).body).toMatchObject({ ok: true, unsealed: 0 });
  });

  it('writes a bounded number of entries for a flood, whatever its size, and counts every refusal', async () => {
    const before = (await refusals()).length;
    const flood = [];
    // One client trying 100 keys, then 100 clients trying one key each.
    for (let i = 0; i < 100; i += 1) flood.push(call(node.url, 'GET', '/api/stats/overview', { key: randomKey(), headers: from('198.51.100.1') }));
    await Promise.all(flood);
    const many = [];
    for (let i = 0; i < 100; i += 1) many.push(call(node.url, 'GET', '/api/stats/overview', { key: randomKey(), headers: from(`198.51.100.${i + 2}`) }));
    await Promise.all(many);
    await flush(200);
    const entries = (await refusals()).slice(before);
    // 10 keys tallied for the first client, then one tally for the rest of its keys; the other
    // clients open tallies up to MAX_SOURCES, then share one.
    expect(entries.length).toBe(MAX_SOURCES + 1);
    expect(entries.reduce((n, e) => n + (e.detail.count as number), 0)).toBe(200);
    const folded = entries.filter((e) => e.detail.folded);
    expect(folded).toHaveLength(2);
    expect(folded.find((e) => e.client_ip === '198.51.100.1')).toMatchObject({ detail: { count: 90, sources: 90 } });
    expect(folded.find((e) => e.client_ip === null)).toMatchObject({ detail: { count: 100 - (MAX_SOURCES - 11), code: 'INVALID_API_KEY' } });
  });
});
