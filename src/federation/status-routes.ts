/** GET /api/federation/status: the node's own view of its link (admin and auditor keys). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { errorResponses } from '../infra/http-schemas.js';
import { requireRole } from '../tenancy/auth.js';
import type { Federation } from './index.js';

const Nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const Status = Type.Object({
  role: Type.String(),
  nodeId: Type.String(),
  nodePrefix: Type.String(),
  upstream: Nullable(Type.Object({
    urls: Type.Array(Type.String()),
    current: Type.String({ description: 'The endpoint requests go to now.' }),
    currentIndex: Type.Integer({ description: '0 is the first of UPSTREAM_URLS.' }),
    consecutiveFailures: Type.Integer(),
    lastError: Nullable(Type.String()),
    lastSuccessAt: Nullable(Type.String()),
    failovers: Type.Integer(),
  })),
  outbox: Nullable(Type.Object({
    backlog: Type.Integer({ description: 'Changes committed and not yet acknowledged by the top-level node.' }),
    oldestUnsentAgeS: Type.Integer(),
    ackedSeq: Type.Integer(),
    nextSeq: Type.Integer(),
  })),
  sender: Nullable(Type.Object({
    leader: Type.Boolean({ description: 'Whether this process is the one sender of its database.' }),
    ackedSeq: Type.Integer(),
    sentBatches: Type.Integer(),
    sentEvents: Type.Integer(),
    consecutiveFailures: Type.Integer(),
    lastError: Nullable(Type.String()),
  })),
  heartbeat: Nullable(Type.Object({ lastSentAt: Nullable(Type.String()), lastError: Nullable(Type.String()) })),
});

export function federationStatusRoutes(federation: Federation): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/federation/status', { onRequest: requireRole('admin', 'auditor'), schema: { response: { 200: Status, ...errorResponses } } }, async () => federation.status());
  };
}
