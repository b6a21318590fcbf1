/** /api/audit: query the log, export the chain's head and verify the chain. Auditor and admin keys. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { errors } from '../infra/errors.js';
import { errorResponses } from '../infra/http-schemas.js';
import { ANCHOR_PATTERN, parseAnchor } from './entry.js';
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

const Head = Type.Object({
  seq: Type.String({ description: "The chain's last position." }),
  hash: Type.String({ description: 'SHA-256 (hex) of the chain up to and including that entry.' }),
});

const HeadAnswer = Type.Object({
  head: Type.Union([
    Type.Intersect([Head, Type.Object({
      anchor: Type.String({ description: 'seq:hash, as GET /api/audit/verify?anchor= and snode audit verify --anchor take it.' }),
      at: Type.Union([Type.String(), Type.Null()], { description: 'When the entry at the head was written.' }),
      sealedAt: Type.Union([Type.String(), Type.Null()], { description: 'When the chain last grew.' }),
    })]),
    Type.Null(),
  ], { description: 'null while the chain is empty.' }),
});

const Verify = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer({ description: 'Sealed entries recomputed.' }),
  head: Type.Union([Head, Type.Null()]),
  unsealed: Type.Integer({ description: 'Committed entries the next sealing round will chain.' }),
  anchor: Type.Optional(Type.Intersect([Head, Type.Object({ ok: Type.Boolean({ description: 'The chain passes through the anchor.' }) })])),
  firstMismatch: Type.Optional(Type.Object({
    seq: Type.Union([Type.String(), Type.Null()], { description: 'Chain position; null for an entry outside the chain.' }),
    id: Type.Union([Type.String(), Type.Null()], { description: 'The entry, when one is named.' }),
    reason: Type.String(),
  })),
});


/**
 * A date (midnight UTC) or a date-time with its zone (`Z`, `+08:00`). `new Date()` alone also took
 * "1" (the year 2001) and read a date-time without a zone in the server's own time zone, so the
 * same query meant different hours on differently configured hosts.
 */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;

function time(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (!ISO_TIME.test(value) || Number.isNaN(date.getTime())) {
    throw errors.badRequest('INVALID_TIME', `${name} must be an ISO 8601 date (2026-11-01) or date-time with a zone (2026-11-01T08:00:00+08:00, ...Z); got ${JSON.stringify(value)}`);
  }
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
          from: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 date or date-time with a zone (Z, +08:00), inclusive.' })),
          to: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 date or date-time with a zone, exclusive.' })),
          before: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'Only entries with a smaller id: the next page, newest first.' })),
          afterSeq: Type.Optional(Type.String({
            pattern: '^[0-9]{1,18}$',
            description: 'Sealed entries after this chain position, oldest first (0 for the start; the next page starts after the last seq read). Unlike before=, a walk this way never misses an entry that committed late.',
          })),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ items: Type.Array(Entry) }), ...errorResponses },
      },
    }, async (request) => {
      const q = request.query;
      if (q.before !== undefined && q.afterSeq !== undefined) throw errors.badRequest('INVALID_QUERY', 'before= pages by id, newest first, and afterSeq= by chain position, oldest first: give one of them');
      const items = await audit.query({
        target: q.target, actor: q.actor, action: q.action, from: time(q.from, 'from'), to: time(q.to, 'to'), beforeId: q.before, afterSeq: q.afterSeq, limit: q.limit,
      });
      return { items };
    });

    app.get('/head', { schema: { response: { 200: HeadAnswer, ...errorResponses } } }, async () => ({ head: await audit.head() }));

    app.get('/verify', {
      schema: {
        querystring: Type.Object({
          anchor: Type.Optional(Type.String({
            pattern: ANCHOR_PATTERN,
            description: 'A head published earlier, as <seq>:<hash>: the chain must pass through it (detects newest entries removed).',
          })),
        }, { additionalProperties: false }),
        response: { 200: Verify, ...errorResponses },
      },
    }, async (request) => audit.verify(request.query.anchor === undefined ? undefined : parseAnchor(request.query.anchor)));
  };
}
