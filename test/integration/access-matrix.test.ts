/**
 * Walks the whole authorisation matrix (src/tenancy/access.ts): every role against every route.
 * A role the matrix allows is never answered 401/403 (nor 404 ROUTE_NOT_FOUND: the entry is a real
 * route); a role it does not allow gets 401 without a key and 403 with one. The node starting at
 * all proves every registered route is in the matrix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_MATRIX, type Caller } from '../../src/tenancy/access.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let ent: { enterpriseId: string; key: string };
let keys: Record<Caller, string | undefined>;
let applicationId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  // The top-level role adds the federation routes (every other route is there too).
  node = await startTestNode({ databaseUrl: db.url, redis: false, env: { BENCH_ROUTES: '1', ROLE: 'top-level', NODE_ID: 'matrix-top' } });
  ent = await onboard(node.url, node.adminKey, makeUscc(851), '88.118.31');
  await call(node.url, 'PUT', '/api/handles/88.118.31/M-1', { key: ent.key, body: { values: [url('https://m.example')] } });
  const auditor = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body.key;
  keys = { anonymous: undefined, enterprise: ent.key, auditor, admin: node.adminKey };
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

/** A concrete request for each route: real ids, paths under the enterprise's own prefix. */
async function requestFor(route: string): Promise<{ method: string; path: string; body?: unknown }> {
  const [method, pattern] = route.split(' ') as [string, string];
  let path = pattern;
  if (path.includes(':id')) {
    let id = ent.enterpriseId;
    if (path.startsWith('/api/admin/keys')) {
      id = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor', label: 'throwaway' } })).body.id;
    } else if (path.includes('applications')) {
      applicationId = (await call(node.url, 'POST', '/api/enterprises/apply', {
        body: { name: 'M', uscc: makeUscc(860 + Math.floor(Math.random() * 100000)), contact: { name: 'n', email: 'a@b.cn' }, industryCode: 'C' },
      })).body.id;
      id = applicationId;
    }
    path = path.replace(':id', id);
  }
  path = path.replace(':prefix', '88.118.31').replace(':version', '1.0');
  if (path === '/*') path = '/88.118.31/M-1?noredirect';
  else if (path === '/api/handles/*') path = '/api/handles/88.118.31/M-1';
  else if (path === '/bench/ceiling/*') path = '/bench/ceiling/88.118.31/M-1';
  else if (path === '/dashboard/*') path = '/dashboard/index.html';
  else if (path === '/docs/static/*') path = '/docs/static/swagger-ui.css';
  else if (path === '/api/handles') path = '/api/handles?prefix=88.118.31';
  else if (path === '/api/stats/report') path = '/api/stats/report?period=2026';
  else if (path === '/api/stats/top') path = '/api/stats/top?metric=registrations&period=2026';
  const bodies: Record<string, unknown> = {
    'PUT /api/handles/*': { values: [url('https://m.example/2')] },
    'POST /api/resolve': { handles: ['88.118.31/M-1'] },
    'POST /api/admin/applications/:id/reject': { reason: 'matrix' },
    'PUT /api/templates/:prefix/:version': { items: [{ name: 'lot', type: 'LOT', index: 2001 }] },
  };
  return { method, path, body: bodies[route] ?? (['POST', 'PUT', 'PATCH'].includes(method) ? {} : undefined) };
}

const callers: Caller[] = ['anonymous', 'enterprise', 'auditor', 'admin'];
const cases = Object.entries(ACCESS_MATRIX).flatMap(([route, entry]) => callers.map((who) => [route, who, entry.who.includes(who)] as const));

describe('the authorisation matrix', () => {
  it.each(cases)('%s as %s (allowed: %s)', async (route, who, allowed) => {
    const r = await requestFor(route);
    const answer = await call(node.url, r.method, r.path, { key: keys[who], ...(r.body !== undefined ? { body: r.body } : {}) });
    if (/^(POST|GET) \/federation\/v1\/(?!nodes)/.test(route)) {
      // Open to every role: what admits a request is the node signature, which none of these carry.
      expect(allowed).toBe(true);
      expect(answer.status).toBe(401);
      expect(answer.body?.error?.code ?? answer.body?.code).toBe('SIGNATURE_MISSING');
    } else if (allowed) {
      expect([401, 403], `${answer.status} ${answer.text.slice(0, 200)}`).not.toContain(answer.status);
      expect(answer.body?.error?.code ?? answer.body?.code).not.toBe('ROUTE_NOT_FOUND');
    } else {
      expect(answer.status).toBe(who === 'anonymous' ? 401 : 403);
    }
  });
});
