/**
 * /federation/v1/ on a node in the top-level role: every route but the monitoring view is signed
 * by a registered node and speaks protobuf (proto/sync.proto); the monitoring view is JSON for
 * admin and auditor keys.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { AppError } from '../../infra/errors.js';
import { ErrorBody, errorResponses, PROTOBUF_BODY } from '../../infra/http-schemas.js';
import { requireRole } from '../../tenancy/auth.js';
import { decode, encode, PROTOBUF_TYPE, type MessageName } from '../wire.js';
import type { NodeRow } from './repository.js';
import type { TopLevelService } from './service.js';

declare module 'fastify' {
  interface FastifyRequest {
    federationNode: NodeRow | null;
  }
}

const MAX_BODY = 64 * 1024 * 1024;

function body<N extends MessageName>(request: FastifyRequest, name: N) {
  const raw = request.body;
  if (!Buffer.isBuffer(raw) || raw.length === 0) {
    if (name === 'SyncBatch' || name === 'PrefixRegistration' || name === 'NodeStatus') throw new AppError('INVALID_PROTOBUF', `the body must be a ${name} (application/x-protobuf)`, 400);
  }
  try {
    return decode(name, Buffer.isBuffer(raw) ? raw : Buffer.alloc(0));
  } catch (err) {
    throw new AppError('INVALID_PROTOBUF', `the body is not a ${name}: ${(err as Error).message}`, 400);
  }
}

export function topLevelRoutes(service: TopLevelService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.decorateRequest('federationNode', null);
    app.addContentTypeParser(PROTOBUF_TYPE, { parseAs: 'buffer', bodyLimit: MAX_BODY }, (_request, raw, done) => done(null, raw));

    const signed = {
      onRequest: async (request: FastifyRequest) => {
        request.federationNode = await service.precheck(request.headers);
      },
      preHandler: async (request: FastifyRequest) => {
        const raw = Buffer.isBuffer(request.body) ? request.body : undefined;
        await service.authenticate(request.federationNode!, request.method, request.url, request.headers, raw);
      },
    };
    const node = (request: FastifyRequest): NodeRow => request.federationNode!;
    /** A signed route's schema: a protobuf body in, a protobuf message out (proto/sync.proto). */
    const wire = (request: string | undefined, answer: string, extra: Record<string, unknown> = {}) => ({
      description: `Signed by a registered node (X-Snode-Node, X-Snode-Timestamp, X-Snode-Nonce, X-Snode-Signature; see proto/sync.proto).${request ? ` Body: a ${request} (application/x-protobuf).` : ''}`,
      // No type: the body arrives as a Buffer (validation accepts anything; decoding checks it).
      ...(request ? { body: { content: { [PROTOBUF_TYPE]: { schema: { description: `A ${request} (proto/sync.proto).` } } } } } : {}),
      response: {
        ...errorResponses,
        200: { description: `A ${answer} (application/x-protobuf).`, content: { [PROTOBUF_TYPE]: { schema: PROTOBUF_BODY } } },
        401: ErrorBody,
        ...extra,
      },
    });

    app.post('/prefixes', { ...signed, bodyLimit: MAX_BODY, schema: wire('PrefixRegistration', 'PrefixRegistrationAck') }, async (request, reply) => {
      const prefixes = await service.registerPrefixes(node(request), body(request, 'PrefixRegistration'));
      return reply.type(PROTOBUF_TYPE).send(encode('PrefixRegistrationAck', { prefixes }));
    });

    app.get('/prefixes/:prefix', { ...signed, schema: { params: Type.Object({ prefix: Type.String({ maxLength: 255 }) }), ...wire(undefined, 'PrefixLookupAnswer') } }, async (request, reply) => {
      const answer = await service.lookup(request.params.prefix);
      return reply.type(PROTOBUF_TYPE).send(encode('PrefixLookupAnswer', answer));
    });

    app.post('/sync', {
      ...signed,
      bodyLimit: MAX_BODY,
      schema: wire('SyncBatch', 'SyncAck', {
        409: {
          description: 'A SyncAck with the acked sequence when the batch starts past it (resume from there), or a replayed request (JSON error).',
          content: {
            [PROTOBUF_TYPE]: { schema: PROTOBUF_BODY },
            'application/json': { schema: { ...ErrorBody, examples: [{ error: { code: 'REPLAYED_REQUEST', message: 'this signed request was seen before', requestId: '6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13' } }] } },
          },
        },
      }),
    }, async (request, reply) => {
      const { status, ack } = await service.sync(node(request), body(request, 'SyncBatch'));
      return reply.code(status).type(PROTOBUF_TYPE).send(encode('SyncAck', ack));
    });

    app.post('/heartbeat', { ...signed, schema: wire('NodeStatus', 'HeartbeatAck') }, async (request, reply) => {
      const ackedSeq = await service.heartbeat(node(request), body(request, 'NodeStatus'));
      return reply.type(PROTOBUF_TYPE).send(encode('HeartbeatAck', { ackedSeq }));
    });

    app.post('/verify', { ...signed, schema: wire(undefined, 'VerifyAnswer') }, async (request, reply) => {
      return reply.type(PROTOBUF_TYPE).send(encode('VerifyAnswer', await service.verify(node(request))));
    });

    app.get('/nodes', {
      onRequest: requireRole('admin', 'auditor'),
      schema: {
        response: {
          200: Type.Object({
            nodes: Type.Array(Type.Object({
              nodeId: Type.String(),
              nodePrefix: Type.String(),
              algorithm: Type.String(),
              baseUrl: Type.String(),
              version: Type.String(),
              state: Type.String({ description: 'up, down (silent past NODE_DOWN_AFTER_MS: answered from escrow) or unknown (never heard from).' }),
              lastHeartbeatAt: Type.Union([Type.String(), Type.Null()]),
              ackedSeq: Type.Integer(),
              backlog: Type.Union([Type.Integer(), Type.Null()]),
              oldestUnsentAgeS: Type.Union([Type.Integer(), Type.Null()]),
              identifiers: Type.Union([Type.Integer(), Type.Null()]),
              registrationsToday: Type.Union([Type.Integer(), Type.Null()]),
              resolutionsToday: Type.Union([Type.Integer(), Type.Null()]),
              registeredAt: Type.String(),
            })),
          }),
          ...errorResponses,
        },
      },
    }, async () => ({ nodes: await service.nodes() }));
  };
}
