/**
 * The authorisation matrix: every route of the node and the roles that may call it, in one place.
 * enforceAccess() attaches the role check to each route as it is registered and refuses to start
 * a node with a route missing here, so no route is ever open by omission. Finer rules (which
 * prefixes a key owns, what an enterprise's statistics cover) live in actor.ts and the services.
 */
import type { FastifyInstance } from 'fastify';
import { requireRole } from './auth.js';
import type { Role } from './api-keys.js';

export type Caller = 'anonymous' | Role;
const ANYONE: readonly Caller[] = ['anonymous', 'enterprise', 'auditor', 'admin'];
const KEYS: readonly Caller[] = ['enterprise', 'auditor', 'admin'];

/** `METHOD url` as the route is registered (HEAD follows GET) -> who may call it, and what it is. */
export const ACCESS_MATRIX: Record<string, { who: readonly Caller[]; what: string }> = {
  'GET /healthz': { who: ANYONE, what: 'the process answers' },
  'GET /readyz': { who: ANYONE, what: 'Postgres and Redis answer' },
  'GET /docs': { who: ANYONE, what: 'the interactive API documentation (Swagger UI, served locally)' },
  'GET /docs/': { who: ANYONE, what: 'the interactive API documentation' },
  'GET /docs/json': { who: ANYONE, what: 'the OpenAPI 3 document' },
  'GET /docs/yaml': { who: ANYONE, what: 'the OpenAPI 3 document in YAML' },
  'GET /docs/static/index.html': { who: ANYONE, what: 'the documentation page (redirects to /docs/)' },
  'GET /docs/static/swagger-initializer.js': { who: ANYONE, what: "the documentation page's script" },
  'GET /docs/static/*': { who: ANYONE, what: "the documentation page's files" },
  'GET /metrics': { who: ['auditor', 'admin'], what: 'Prometheus metrics (with METRICS_PORT: on a listener of their own, without a key)' },
  'GET /api/handles/*': { who: ANYONE, what: 'resolve; private values only to the prefix owner and admins' },
  'POST /api/resolve': { who: ANYONE, what: 'resolve many; private values only to the owner and admins' },
  'GET /*': { who: ANYONE, what: 'proxy view of a record' },
  'PUT /api/handles/*': { who: ['enterprise', 'admin'], what: 'create or replace: an enterprise under its active prefixes (or those its key names), an admin under NODE_PREFIX' },
  'DELETE /api/handles/*': { who: ['enterprise', 'admin'], what: 'delete: as PUT' },
  'GET /api/handles': { who: KEYS, what: 'list a prefix: its owner, auditors and admins' },
  'POST /api/handles/batch': { who: ['enterprise', 'admin'], what: 'many writes: each item as PUT or DELETE would allow it' },
  'POST /api/imports': { who: ['enterprise', 'admin'], what: 'import a file under a prefix the key may write' },
  'GET /api/imports/:id': { who: KEYS, what: "an import's progress: its enterprise, auditors and admins" },
  'GET /api/imports/:id/rejected': { who: KEYS, what: "an import's rejected lines: as its progress" },
  'PUT /api/templates/:prefix/:version': { who: ['enterprise', 'admin'], what: 'define or change a metadata template: as writing records under the prefix' },
  'GET /api/templates/:prefix/:version': { who: ANYONE, what: 'a metadata template (they describe public data models)' },
  'GET /api/templates/:prefix': { who: ANYONE, what: "a prefix's metadata template versions" },
  'POST /federation/v1/prefixes': { who: ANYONE, what: 'top-level role: register prefixes; the request must be signed by a registered node' },
  'GET /federation/v1/prefixes/:prefix': { who: ANYONE, what: 'top-level role: where a prefix is homed; signed by a registered node' },
  'POST /federation/v1/sync': { who: ANYONE, what: 'top-level role: a sync batch; signed by a registered node' },
  'POST /federation/v1/heartbeat': { who: ANYONE, what: 'top-level role: a heartbeat; signed by a registered node' },
  'POST /federation/v1/verify': { who: ANYONE, what: 'top-level role: per-prefix counts and digests; signed by a registered node' },
  'GET /federation/v1/nodes': { who: ['auditor', 'admin'], what: 'top-level role: the monitoring view of the nodes' },
  'GET /api/federation/status': { who: ['auditor', 'admin'], what: "the node's link with the top-level node: upstream, backlog, acked sequence" },
  'POST /api/enterprises/apply': { who: ANYONE, what: 'apply to join the node' },
  'GET /api/enterprises/applications/:id': { who: ANYONE, what: "an application's state (by its unguessable id)" },
  'GET /api/keys': { who: ['enterprise'], what: "its own enterprise's keys (never the keys themselves)" },
  'POST /api/keys': { who: ['enterprise'], what: 'create a key for its own enterprise: role enterprise, its own prefixes, no later expiry than its own' },
  'DELETE /api/keys/:id': { who: ['enterprise'], what: "revoke a key of its own enterprise (a prefix-restricted key: keys within its prefixes)" },
  'GET /api/stats/overview': { who: KEYS, what: 'statistics: an enterprise sees its own prefixes only' },
  'GET /api/stats/registrations': { who: KEYS, what: 'statistics: as overview' },
  'GET /api/stats/resolutions': { who: KEYS, what: 'statistics: as overview' },
  'GET /api/stats/top': { who: KEYS, what: 'statistics: as overview' },
  'GET /api/stats/report': { who: KEYS, what: 'statistics: as overview' },
  'GET /dashboard': { who: ANYONE, what: 'the dashboard page (its data needs an auditor or admin key)' },
  'GET /dashboard/*': { who: ANYONE, what: 'the dashboard files' },
  'GET /api/audit': { who: ['auditor', 'admin'], what: 'query the audit log' },
  'GET /api/audit/': { who: ['auditor', 'admin'], what: 'query the audit log' },
  'GET /api/audit/verify': { who: ['auditor', 'admin'], what: 'verify the hash chain (optionally through an anchored head)' },
  'GET /api/audit/head': { who: ['auditor', 'admin'], what: "the chain's head, to anchor outside the database" },
  'POST /api/admin/enterprises': { who: ['admin'], what: 'register an enterprise' },
  'GET /api/admin/enterprises': { who: ['admin'], what: 'list enterprises' },
  'GET /api/admin/enterprises/:id': { who: ['admin'], what: 'one enterprise' },
  'POST /api/admin/enterprises/:id/prefixes': { who: ['admin'], what: 'allocate a prefix' },
  'GET /api/admin/prefixes': { who: ['admin'], what: 'list prefixes' },
  'PATCH /api/admin/prefixes/:prefix': { who: ['admin'], what: 'disable or enable a prefix' },
  'POST /api/admin/keys': { who: ['admin'], what: 'create a key' },
  'GET /api/admin/keys': { who: ['admin'], what: 'list keys' },
  'DELETE /api/admin/keys/:id': { who: ['admin'], what: 'revoke a key' },
  'GET /api/admin/applications': { who: ['admin'], what: 'list applications' },
  'POST /api/admin/applications/:id/approve': { who: ['admin'], what: 'approve: prefix and first key' },
  'POST /api/admin/applications/:id/reject': { who: ['admin'], what: 'reject with a reason' },
  'GET /bench/ceiling/*': { who: ANYONE, what: 'bench only (BENCH_ROUTES)' },
  'POST /bench/seed': { who: ['admin'], what: 'bench only (BENCH_ROUTES)' },
  'POST /bench/seed-stats': { who: ['admin'], what: 'bench only (BENCH_ROUTES)' },
  'GET /bench/count-identifiers': { who: ANYONE, what: 'bench only (BENCH_ROUTES)' },
  'POST /bench/copy': { who: ['admin'], what: 'bench only (BENCH_ROUTES)' },
  'DELETE /bench/copy': { who: ['admin'], what: 'bench only (BENCH_ROUTES)' },
};

/** Attaches each route's role check (first of its onRequest hooks); a route not in the matrix stops the start. */
export function enforceAccess(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => (m === 'HEAD' ? 'GET' : m));
    const entries = [...new Set(methods)].map((method) => {
      const entry = ACCESS_MATRIX[`${method} ${route.url}`];
      if (!entry) throw new Error(`route ${method} ${route.url} is not in the authorisation matrix (src/tenancy/access.ts)`);
      return entry;
    });
    const who = entries[0]!.who;
    if (entries.some((e) => e.who.join() !== who.join())) throw new Error(`route ${route.url}: one registration with different access per method`);
    if (who.includes('anonymous')) return;
    const check = requireRole(...(who as Role[]));
    const existing = route.onRequest;
    route.onRequest = (existing === undefined ? [check] : [check, ...(Array.isArray(existing) ? existing : [existing])]) as never;
  });
}
