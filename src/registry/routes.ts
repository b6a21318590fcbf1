/** PUT and DELETE /api/handles/{handle}, and the listing GET /api/handles?prefix=. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { errors, ResponseCode } from '../infra/errors.js';
import { etag, parseHandleOrThrow } from '../infra/handle-http.js';
import { handleErrorResponses } from '../infra/http-schemas.js';
import { HandleOk, recordBodySchema } from './http-schemas.js';
import { writeConditions } from './preconditions.js';
import type { RegistryService } from './service.js';

const HandleParams = Type.Object({ '*': Type.String({ maxLength: 1024 }) });
const ConditionalHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ maxLength: 1024 })),
  'if-none-match': Type.Optional(Type.String({ maxLength: 1024 })),
});

export function registryRoutes(registry: RegistryService, maxValues: number): FastifyPluginAsyncTypebox {
  // Runs before the body is parsed or validated: who may write comes before what is written.
  const mayWrite = async (request: FastifyRequest) => {
    registry.authoriseWrite(request.actor, (request.params as { '*': string })['*']);
  };

  return async (app) => {
    app.put('/api/handles/*', {
      onRequest: mayWrite,
      schema: {
        params: HandleParams,
        headers: ConditionalHeaders,
        querystring: Type.Object({ overwrite: Type.Optional(Type.Boolean({ description: 'false: refuse with 409 if the handle exists.' })) }),
        body: recordBodySchema(maxValues),
        response: { 200: HandleOk, 201: HandleOk, ...handleErrorResponses },
      },
    }, async (request, reply) => {
      const path = request.params['*'];
      if (request.body.handle !== undefined && parseHandleOrThrow(request.body.handle).handle !== parseHandleOrThrow(path).handle) {
        throw errors.invalidHandle('the body names a different handle than the URL');
      }
      const conditions = writeConditions(request.headers, request.query.overwrite);
      const result = await registry.put(request.actor, path, request.body.values, conditions, { id: request.id, ip: request.ip });
      reply.header('etag', etag(result.version));
      reply.code(result.created && conditions.createOnly ? 201 : 200);
      return { responseCode: ResponseCode.SUCCESS, handle: result.handle };
    });

    app.delete('/api/handles/*', {
      onRequest: mayWrite,
      schema: {
        params: HandleParams,
        headers: ConditionalHeaders,
        response: { 200: HandleOk, ...handleErrorResponses },
      },
    }, async (request) => {
      const conditions = writeConditions(request.headers, undefined);
      const handle = await registry.delete(request.actor, request.params['*'], conditions.ifMatch === undefined ? {} : { ifMatch: conditions.ifMatch }, { id: request.id, ip: request.ip });
      return { responseCode: ResponseCode.SUCCESS, handle };
    });

    app.get('/api/handles', {
      schema: {
        querystring: Type.Object({
          prefix: Type.String({ minLength: 1, maxLength: 128 }),
          page: Type.Integer({ minimum: 0, maximum: 1_000_000_000, default: 0, description: '0-based, as in Handle REST.' }),
          pageSize: Type.Integer({ minimum: 1, maximum: 10000, default: 100 }),
        }),
        response: {
          200: Type.Object({
            responseCode: Type.Integer(),
            prefix: Type.String(),
            totalCount: Type.Integer(),
            page: Type.Integer(),
            pageSize: Type.Integer(),
            handles: Type.Array(Type.String()),
          }),
          ...handleErrorResponses,
        },
      },
    }, async (request) => {
      const { page, pageSize } = request.query;
      const result = await registry.list(request.actor, request.query.prefix, page, pageSize);
      return { responseCode: ResponseCode.SUCCESS, prefix: result.prefix, totalCount: result.total, page, pageSize, handles: result.handles };
    });
  };
}
