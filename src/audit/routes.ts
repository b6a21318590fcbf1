/** /api/audit: query the log and verify its hash chain. Auditor and admin keys. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { errors } from '../infra/errors.js';
import { errorResponses } from '../infra/http-schemas.js';
import type { AuditLog } from './service.js';

const Entry = Type.Object({
  id: Type.String(),
  seq: Type.Union([Type.String(), Type.Null()], { description: 'Position in the hash chain; null until sealed (within AUDIT_SEAL_MS).' }),
  at: Type.String(),
  actorKey: Type.Union([Type.String(), Type.Null()]),
  actorRole: Type.String(),
  action: Type.String(),
  target: Type.String(),
  requestId: Type.Union([Type.String(), Type.Null()]),
  clientIp: Type.Union([Type.String(), Type.Null()]),
  beforeDigest: Type.Union([Type.String(), Type.Null()]),
  afterDigest: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Unknown(),
});

const Verify = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer(),
  head: Type.Union([Type.Object({ seq: Type.String(), hash: Type.String() }), Type.Null()]),
  unsealed: Type.Integer(),
  firstMismatch: Type.Optional(Type.Object({ seq: Type.String(), id: Type.Union([Type.String(), Type.Null()]), reason: Type.String() })),
});

function time(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw errors.badRequest('INVALID_TIME', `${name} is not an ISO 8601 date-time`);
  return date;
}

export function auditRoutes(audit: AuditLog): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/', {
      schema: {
        querystring: Type.Object({
          target: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'A handle, prefix, key id or application id.' })),
          actor: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The acting key id ("cli" for the command line).' })),
          action: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          from: Type.Optional(Type.String({ maxLength: 64, description: 'ISO date-time, inclusive.' })),
          to: Type.Optional(Type.String({ maxLength: 64, description: 'ISO date-time, exclusive.' })),
          before: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'Only entries with a smaller id: the next page.' })),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ items: Type.Array(Entry) }), ...errorResponses },
      },
    }, async (request) => {
      const q = request.query;
      const items = await audit.query({
        target: q.target, actor: q.actor, action: q.action, from: time(q.from, 'from'), to: time(q.to, 'to'), beforeId: q.before, limit: q.limit,
      });
      return { items };
    });

    app.get('/verify', { schema: { response: { 200: Verify, ...errorResponses } } }, async () => audit.verify());
  };
}
