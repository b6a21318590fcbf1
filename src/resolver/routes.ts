/** GET /api/handles/{handle} (Handle REST resolution) and POST /api/resolve (batches). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { InvalidHandleError } from '../handle/handle.js';
import { AppError, ResponseCode } from '../infra/errors.js';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import { replyBuffers } from '../infra/reply-buffers.js';
import { BINARY_SCHEMA, HandleErrorBody, handleErrorResponses, HandleValueSchema, NOT_MODIFIED, RESOLUTION_EXAMPLE, ResolutionSchema } from '../infra/http-schemas.js';
import { ownsPrefix } from '../tenancy/actor.js';
import { isPublicView, viewBody, type View } from './answers.js';
import type { CacheEntry } from './cache-entry.js';
import { JSON_TYPE, wantsProtobuf } from './http-cache.js';
import { sendEntry } from './reply-entry.js';
import { decodeBatchRequest, encodeBatch, encodeResolution, PROTOBUF_TYPE } from './protobuf.js';
import type { ResolutionContext, ResolvedItem, ResolverService } from './service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the federation module on nodes that federate (absent otherwise): what a miss passes to other nodes. */
    resolutionContext?: ResolutionContext | null;
  }
}

/** What a request carries for resolution across nodes, if anything. */
export const contextOf = (request: FastifyRequest): ResolutionContext | undefined => request.resolutionContext ?? undefined;

/** `?pretty` and `?pretty=true` are on; `?pretty=false` and `?pretty=0` are off. */
export const flag = (value: string | undefined): boolean => value !== undefined && value !== 'false' && value !== '0';

export const MAX_BATCH_HANDLES = 1000;


/** The batch item for a string that is not a handle. */
function invalidItem(input: string, err: InvalidHandleError): Record<string, unknown> {
  return { responseCode: ResponseCode.INVALID_HANDLE, handle: input, message: `invalid handle: ${err.message}`, code: 'INVALID_HANDLE' };
}

/**
 * The batch answer from the entries' ready bytes: `{"results":[` + parts + `]}` for JSON, and
 * for protobuf each cached Resolution framed into a ResolveBatchResponse without re-encoding.
 */
function sendBatch(request: FastifyRequest, reply: FastifyReply, inputs: readonly string[], items: readonly ResolvedItem[], nodePrefix: string): void {
  const proto = wantsProtobuf(request);
  const keyed = request.actor.kind === 'key';
  const parts: Buffer[] = new Array(items.length);
  for (let i = 0; i < items.length; i += 1) {
    const item = items[i]!;
    if (item instanceof InvalidHandleError || item instanceof AppError) {
      const body = item instanceof AppError ? { responseCode: item.responseCode, handle: inputs[i]!, message: item.message, code: item.code } : invalidItem(inputs[i]!, item);
      parts[i] = proto ? encodeResolution(body as never) : Buffer.from(JSON.stringify(body));
      continue;
    }
    const view: View = { owner: keyed && ownsPrefix(request.actor, item.prefix, nodePrefix) };
    if (isPublicView(item, view)) {
      parts[i] = proto ? item.proto : item.json;
    } else {
      const body = viewBody(item as Extract<CacheEntry, { found: true }>, view);
      parts[i] = proto ? encodeResolution(body) : Buffer.from(JSON.stringify(body));
    }
  }
  reply.header('cache-control', 'no-store');
  if (proto) {
    reply.type(PROTOBUF_TYPE).send(encodeBatch(parts, (size) => replyBuffers.lend(reply.raw, size)));
    return;
  }
  // One copy of each part into the answer: `{"results":[` part `,` part ... `]}`, in a buffer
  // lent until the answer is sent (a fresh one per answer costs more in GC than the copy).
  let total = BATCH_OPEN.length + BATCH_CLOSE.length + parts.length - 1;
  for (const part of parts) total += part.length;
  const body = replyBuffers.lend(reply.raw, total);
  let at = BATCH_OPEN.copy(body, 0);
  for (let i = 0; i < parts.length; i += 1) {
    if (i > 0) body[at++] = COMMA;
    // TypedArray set: the copy alone, without Buffer.copy's argument checks (sizes are known).
    const part = parts[i]!;
    body.set(part, at);
    at += part.length;
  }
  BATCH_CLOSE.copy(body, at);
  reply.type(JSON_TYPE).send(body);
}

const BATCH_OPEN = Buffer.from('{"results":[');
const COMMA = 0x2c;
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
        // Answers are ready bytes written as they are (never serialised here): these document them.
        response: {
          ...handleErrorResponses,
          200: {
            description: 'The record (public values, or every value the key may see), filtered by type= and index=. Headers: ETag (the version), Cache-Control, Vary.',
            content: {
              'application/json': { schema: Type.Object({ responseCode: Type.Integer(), handle: Type.String(), values: Type.Array(HandleValueSchema) }, { examples: [RESOLUTION_EXAMPLE] }) },
              [PROTOBUF_TYPE]: { schema: { ...BINARY_SCHEMA, description: 'A snode.resolution.v1.Resolution (proto/resolution.proto), with Accept: application/x-protobuf.' } },
            },
          },
          304: NOT_MODIFIED,
          404: { ...HandleErrorBody, description: 'No such handle (responseCode 100).', examples: [{ responseCode: 100, handle: '88.118.8/PART-0404', message: 'handle 88.118.8/PART-0404 not found', code: 'HANDLE_NOT_FOUND' }] },
          504: { ...HandleErrorBody, description: 'A foreign handle whose home node and top-level node did not answer (OWNER_UNREACHABLE).', examples: [{ responseCode: 2, handle: '86.100.1/X', message: 'the node homing prefix 86.100.1 did not answer', code: 'OWNER_UNREACHABLE' }] },
          508: { ...HandleErrorBody, description: 'More federation hops than FEDERATION_MAX_HOPS (LOOP_DETECTED).', examples: [{ responseCode: 2, handle: '86.100.1/X', message: 'too many federation hops', code: 'LOOP_DETECTED' }] },
        },
      },
    }, (request, reply) => {
      // Not async: an L1 hit is answered in this call, without a promise or a microtask.
      const query = request.query;
      const filter = query.type || query.index ? { types: query.type, indexes: query.index } : undefined;
      const pretty = query.pretty !== undefined && flag(query.pretty);
      const raw = request.params['*'];
      const hit = query.auth === true ? undefined : resolver.hit(raw);
      if (hit) {
        sendEntry(request, reply, hit, viewOf(request, hit.prefix, filter), pretty);
        return undefined;
      }
      const handle = parseHandleOrThrow(raw);
      const view = viewOf(request, handle.prefix, filter);
      const context = contextOf(request);
      const entry = query.auth === true ? resolver.fresh(handle, context) : resolver.lookup(handle, context);
      if (entry instanceof Promise) {
        return entry.then((loaded) => {
          sendEntry(request, reply, loaded, view, pretty);
        });
      }
      sendEntry(request, reply, entry, view, pretty);
      return undefined;
    });

    // JSON bodies here are {"handles":[strings]} under additionalProperties: false and are never
    // merged into other objects, so the scan of every body for "__proto__" and "constructor"
    // (fastify's default, for routes that merge) guards nothing here. Same parser and errors otherwise.
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, app.getDefaultJsonParser('ignore', 'ignore'));

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
        response: {
          200: {
            description: 'One answer per handle, in order, each with its own responseCode (1, 100, 102, ...).',
            content: {
              'application/json': { schema: Type.Object({ results: Type.Array(ResolutionSchema) }, { examples: [{ results: [RESOLUTION_EXAMPLE, { responseCode: 100, handle: '88.118.8/NO-SUCH', message: 'handle 88.118.8/NO-SUCH not found', code: 'HANDLE_NOT_FOUND' }, { responseCode: 102, handle: 'not a handle', message: 'invalid handle: no / between prefix and suffix', code: 'INVALID_HANDLE' }] }] }) },
              [PROTOBUF_TYPE]: { schema: { ...BINARY_SCHEMA, description: 'A ResolveBatchResponse (proto/resolution.proto), with Accept: application/x-protobuf.' } },
            },
          },
        },
      },
    }, (request, reply) => {
      const inputs = request.body.handles;
      const items = resolver.resolveMany(inputs, contextOf(request));
      if (items instanceof Promise) {
        return items.then((loaded) => {
          sendBatch(request, reply, inputs, loaded, nodePrefix);
        });
      }
      sendBatch(request, reply, inputs, items, nodePrefix);
      return undefined;
    });
  };

  function viewOf(request: FastifyRequest, prefix: string, filter: View['filter']): View {
    return { owner: request.actor.kind === 'key' && ownsPrefix(request.actor, prefix, nodePrefix), filter };
  }
}
