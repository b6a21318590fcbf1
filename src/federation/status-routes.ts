/** GET /api/federation/status: the node's own view of its link (admin and auditor keys). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requireRole } from '../tenancy/auth.js';
import type { Federation } from './index.js';

export function federationStatusRoutes(federation: Federation): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/federation/status', { onRequest: requireRole('admin', 'auditor') }, async () => federation.status());
  };
}
