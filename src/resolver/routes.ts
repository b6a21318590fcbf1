/** GET /api/handles/{handle} (Handle REST resolution) and POST /api/resolve (batches). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { InvalidHandleError, parseHandle, type Handle } from '../handle/handle.js';
import { AppError, ResponseCode } from '../infra/errors.js';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import { handleErrorResponses, HandleValueSchema } from '../infra/http-schemas.js';
import { ownsPrefix } from '../tenancy/actor.js';
import { isPublicView, viewBody, type View } from './answers.js';
import type { CacheEntry } from './cache-entry.js';
import { JSON_TYPE, wantsProtobuf } from './http-cache.js';
import { sendEntry } from './reply-entry.js';
import { decodeBatchRequest, encodeBatch, encodeResolution, PROTOBUF_TYPE } from './protobuf.js';
import type { ResolverService } from './service.js';

/** `?pretty` and `?pretty=true` are on; `?pretty=false` and `?pretty=0` are off. */
export const flag = (value: string | undefined): boolean => value !== undefined && value !== 'false' && value !== '0';

export const MAX_BATCH_HANDLES = 1000;

const ResolutionSchema = Type.Object({
  responseCode: Type.Integer({ description: '1 found, 200 found but no value matched, 100 not found, 102 invalid handle.' }),
  handle: Type.String(),
  values: Type.Optional(Type.Array(HandleValueSchema)),
  message: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
});

/** The batch item for a string that is not a handle. */
function invalidItem(input: string, err: InvalidHandleError): Record<string, unknown> {
  return { responseCode: ResponseCode.INVALID_HANDLE, handle: input, message: `invalid handle: ${err.message}`, code: 'INVALID_HANDLE' };
}

/**
 * The batch answer from the entries' ready bytes: `{"results":[` + parts + `]}` for JSON, and
 * for protobuf each cached Resolution framed into a ResolveBatchResponse without re-encoding.
 */
function sendBatch(
  request: FastifyRequest,
  reply: FastifyReply,
  inputs: readonly string[],
  parsed: ReadonlyArray<Handle | InvalidHandleError>,
  entries: readonly CacheEntry[],
  nodePrefix: string,
): void {
  const proto = wantsProtobuf(request);
  const parts: Buffer[] = [];
  let next = 0;
  parsed.forEach((p, i) => {
    if (p instanceof InvalidHandleError) {
      const item = invalidItem(inputs[i]!, p);
      parts.push(proto ? encodeResolution(item as never) : Buffer.from(JSON.stringify(item)));
      return;
    }
    const entry = entries[next++]!;
    const view: View = { owner: request.actor.kind === 'key' && ownsPrefix(request.actor, p.prefix, nodePrefix) };
    if (isPublicView(entry, view)) {
      parts.push(proto ? entry.proto : entry.json);
    } else {
      const body = viewBody(entry as Extract<CacheEntry, { found: true }>, view);
      parts.push(proto ? encodeResolution(body) : Buffer.from(JSON.stringify(body)));
    }
  });
  reply.header('cache-control', 'no-store');
  if (proto) {
    reply.type(PROTOBUF_TYPE).send(encodeBatch(parts));
    return;
  }
  const joined: Buffer[] = [BATCH_OPEN];
  parts.forEach((part, i) => {
    if (i > 0) joined.push(COMMA);
    joined.push(part);
  });
  joined.push(BATCH_CLOSE);
  reply.type(JSON_TYPE).send(Buffer.concat(joined));
}

const BATCH_OPEN = Buffer.from('{"results":[');
const COMMA = Buffer.from(',');
const BATCH_CLOSE = Buffer.from(']}');

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
    }, (request, reply) => {
      // Not async: an L1 hit is answered in this call, without a promise or a microtask.
      const handle = parseHandleOrThrow(request.params['*']);
      const query = request.query;
      const view: View = {
        owner: request.actor.kind === 'key' && ownsPrefix(request.actor, handle.prefix, nodePrefix),
        filter: query.type || query.index ? { types: query.type, indexes: query.index } : undefined,
      };
      const pretty = query.pretty !== undefined && flag(query.pretty);
      const entry = query.auth === true ? resolver.fresh(handle) : resolver.lookup(handle);
      if (entry instanceof Promise) {
        return entry.then((loaded) => {
          sendEntry(request, reply, loaded, view, pretty);
        });
      }
      sendEntry(request, reply, entry, view, pretty);
      return undefined;
    });

    app.addContentTypeParser(PROTOBUF_TYPE, { parseAs: 'buffer' }, (_request, body, done) => {
      try {
        done(null, { handles: decodeBatchRequest(body as Buffer) });
      } catch (err) {
        done(new AppError('INVALID_PROTOBUF', `the body is not a ResolveBatchRequest: ${(err as Error).message}`, 400, ResponseCode.ERROR), undefined);
      }
    });

    app.post('/api/resolve', {
      schema: {
        body: Type.Object({
          handles: Type.Array(Type.String({ maxLength: 1024 }), { minItems: 1, maxItems: MAX_BATCH_HANDLES, description: `Up to ${MAX_BATCH_HANDLES} handles.` }),
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ results: Type.Array(ResolutionSchema) }) },
      },
    }, (request, reply) => {
      const inputs = request.body.handles;
      const parsed: Array<Handle | InvalidHandleError> = inputs.map((input) => {
        try {
          return parseHandle(input);
        } catch (err) {
          if (err instanceof InvalidHandleError) return err;
          throw err;
        }
      });
      const valid = parsed.filter((p): p is Handle => !(p instanceof InvalidHandleError));
      const entries = resolver.resolveMany(valid);
      if (entries instanceof Promise) {
        return entries.then((loaded) => {
          sendBatch(request, reply, inputs, parsed, loaded, nodePrefix);
        });
      }
      sendBatch(request, reply, inputs, parsed, entries, nodePrefix);
      return undefined;

    });
  };
}

