/** GET /api/handles/{handle}: Handle REST resolution with type/index filters. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { filterValues, visibleValues } from '../handle/filters.js';
import { errors, ResponseCode } from '../infra/errors.js';
import { etag, parseHandleOrThrow } from '../infra/handle-http.js';
import { handleErrorResponses, HandleValueSchema } from '../infra/http-schemas.js';
import { ownsPrefix } from '../tenancy/actor.js';
import type { ResolverService } from './service.js';

/** `?pretty` and `?pretty=true` are on; `?pretty=false` and `?pretty=0` are off. */
const flag = (value: string | undefined): boolean => value !== undefined && value !== 'false' && value !== '0';

export function resolverRoutes(resolver: ResolverService, nodePrefix: string): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/handles/*', {
      schema: {
        params: Type.Object({ '*': Type.String({ maxLength: 1024 }) }),
        querystring: Type.Object({
          type: Type.Optional(Type.Array(Type.String({ maxLength: 255 }), { maxItems: 64, description: 'Return values of these types (a type ending in "." also matches its subtypes).' })),
          index: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 2147483647 }), { maxItems: 64, description: 'Return values at these indexes.' })),
          auth: Type.Optional(Type.Boolean({ description: 'true: bypass every cache and read the source of truth.' })),
          pretty: Type.Optional(Type.String({ maxLength: 8 })),
        }),
        response: {
          200: Type.Object({ responseCode: Type.Integer(), handle: Type.String(), values: Type.Array(HandleValueSchema) }),
          ...handleErrorResponses,
        },
      },
    }, async (request, reply) => {
      const handle = parseHandleOrThrow(request.params['*']);
      const record = await resolver.resolve(handle, { bypassCache: request.query.auth === true });
      if (!record) throw errors.handleNotFound(handle.handle);
      const visible = visibleValues(record.values, ownsPrefix(request.actor, handle.prefix, nodePrefix));
      const values = filterValues(visible, { types: request.query.type, indexes: request.query.index });
      const body = {
        responseCode: values.length > 0 ? ResponseCode.SUCCESS : ResponseCode.VALUES_NOT_FOUND,
        handle: record.handle,
        values,
      };
      reply.header('etag', etag(record.version));
      if (flag(request.query.pretty)) {
        return reply.serializer((payload) => JSON.stringify(payload, null, 2)).send(body);
      }
      return body;
    });
  };
}
