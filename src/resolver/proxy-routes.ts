/**
 * The proxy view, GET /{handle}: a 302 to the record's first http(s) URL value with the query
 * string passed on; with `?noredirect`, or without such a value, the record itself: an HTML page
 * for browsers, JSON (or protobuf) for API clients. `?qr=svg|png` answers the handle's QR code
 * instead (qr-reply.ts).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { InvalidHandleError, parseHandle } from '../handle/handle.js';
import { visibleValues } from '../handle/filters.js';
import type { HandleValue } from '../handle/values.js';
import { AppError, ResponseCode } from '../infra/errors.js';
import { BINARY_SCHEMA, ErrorBody, HandleErrorBody, NOT_MODIFIED, RESOLUTION_EXAMPLE, ResolutionSchema } from '../infra/http-schemas.js';
import { ownsPrefix } from '../tenancy/actor.js';
import type { View } from './answers.js';
import { cacheHeaders, wantsHtml } from './http-cache.js';
import { sendQr } from './qr-reply.js';
import { QR_ECC_LEVELS, QR_FORMATS, QR_SIZE } from './qr.js';
import { renderNotFoundPage, renderRecordPage } from './record-page.js';
import { sendEntry } from './reply-entry.js';
import { contextOf } from './routes.js';
import type { ResolverService } from './service.js';

const PAGE_SECURITY = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** The first URL value (lowest index) whose data is an absolute http(s) URL. */
export function redirectTarget(values: readonly HandleValue[]): URL | undefined {
  const urls = values.filter((v) => v.type.toUpperCase() === 'URL' && v.data.format === 'string').sort((a, b) => a.index - b.index);
  for (const value of urls) {
    try {
      const url = new URL(String(value.data.value));
      if (url.protocol === 'http:' || url.protocol === 'https:') return url;
    } catch {
      // not a URL: try the next one
    }
  }
  return undefined;
}

/** The target with the request's query string appended to its own (fragment kept in place). */
export function withQuery(target: URL, rawQuery: string): string {
  if (!rawQuery) return target.href;
  const url = new URL(target.href);
  url.search = url.search ? `${url.search}&${rawQuery}` : `?${rawQuery}`;
  return url.href;
}

/** `baseUrl()`: the node's public URL (PUBLIC_URL, else where it listens), which QR codes encode. */
export function proxyRoutes(resolver: ResolverService, nodePrefix: string, nodeId: string, baseUrl: () => string): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/*', {
      schema: {
        params: Type.Object({ '*': Type.String({ maxLength: 1024 }) }),
        // Every other parameter is passed on to the redirect target, so size and ecc are only
        // read (and refused when wrong) when `qr` is present.
        querystring: Type.Object(
          {
            noredirect: Type.Optional(Type.String({ maxLength: 16, description: 'Present: show the record instead of redirecting.' })),
            qr: Type.Optional(Type.String({ maxLength: 64, description: `${QR_FORMATS.join(' or ')}: answer the QR code of the handle's public URL instead (404 for a handle this node does not hold).` })),
            // Unknown, not String: a redirect passes `?size=a&size=b` on untouched, as before.
            size: Type.Optional(Type.Unknown({ description: `With qr: the image width in pixels, ${QR_SIZE.min} to ${QR_SIZE.max} (default ${QR_SIZE.default}).` })),
            ecc: Type.Optional(Type.Unknown({ description: `With qr: the error correction level, ${QR_ECC_LEVELS.join(', ')} (default M).` })),
          },
          { additionalProperties: true, description: 'Any other parameters are appended to the redirect target.' },
        ),
        response: {
          200: {
            description: 'The record: an HTML page for browsers (Accept: text/html), JSON or protobuf for API clients.',
            content: {
              'text/html': { schema: Type.String({ examples: ['<!DOCTYPE html><html lang="zh-CN"><head><title>88.118.8/PART-0001</title>...'] }) },
              'application/json': { schema: { ...ResolutionSchema, examples: [RESOLUTION_EXAMPLE] } },
              'application/x-protobuf': { schema: { ...BINARY_SCHEMA, description: 'A Resolution (proto/resolution.proto).' } },
              'image/svg+xml': { schema: Type.String({ description: "With qr=svg: the QR code of the handle's public URL." }) },
              'image/png': { schema: { ...BINARY_SCHEMA, description: "With qr=png: the QR code of the handle's public URL." } },
            },
          },
          400: {
            description: 'With qr: a format, size or ecc out of bounds (a stable code names which).',
            content: { 'application/json': { schema: { ...ErrorBody, examples: [{ error: { code: 'INVALID_QR_SIZE', message: 'size must be a whole number of pixels from 32 to 2048', requestId: 'req-1' } }] } } },
          },
          302: { description: "To the record's first http(s) URL value, the request's query string appended (Location header).", type: 'null' },
          304: NOT_MODIFIED,
          404: {
            description: 'No such handle (the record page or a Handle-style body), or the path is not a handle (ROUTE_NOT_FOUND).',
            content: {
              'application/json': {
                schema: Type.Union([ErrorBody, HandleErrorBody], {
                  examples: [{ responseCode: 100, handle: '88.118.8/PART-0404', message: 'handle 88.118.8/PART-0404 not found', code: 'HANDLE_NOT_FOUND' }],
                }),
              },
              'text/html': { schema: Type.String() },
            },
          },
        },
      },
    }, async (request, reply) => {
      let handle;
      try {
        handle = parseHandle(request.params['*']);
      } catch (err) {
        if (!(err instanceof InvalidHandleError)) throw err;
        throw new AppError('ROUTE_NOT_FOUND', `no route or handle at ${request.url.split('?', 1)[0]}: ${err.message}`, 404, ResponseCode.ERROR);
      }
      const question = request.url.indexOf('?');
      if (question >= 0 && request.query.qr !== undefined) return sendQr(request, reply, handle, resolver, nodePrefix, baseUrl);
      const owner = request.actor.kind === 'key' && ownsPrefix(request.actor, handle.prefix, nodePrefix);
      const view: View = { owner };
      const entry = await resolver.lookup(handle, contextOf(request));
      const values = entry.found ? visibleValues(entry.values(), owner) : [];
      const rawQuery = question >= 0 ? request.url.slice(question + 1) : '';
      const target = request.query.noredirect === undefined ? redirectTarget(values) : undefined;
      if (target) {
        cacheHeaders(request, reply, entry, false, owner && entry.found && entry.hasPrivate);
        reply.removeHeader('etag');
        return reply.redirect(withQuery(target, rawQuery), 302);
      }
      if (!wantsHtml(request.headers.accept)) return sendEntry(request, reply, entry, view, false);
      const privateView = owner && entry.found && entry.hasPrivate;
      cacheHeaders(request, reply, entry, false, privateView);
      reply.removeHeader('etag');
      reply.headers(PAGE_SECURITY).type('text/html; charset=utf-8');
      if (!entry.found) return reply.code(404).send(renderNotFoundPage(handle.handle, { nodeId }));
      return reply.send(renderRecordPage({ handle: entry.handle, values }, { nodeId }));
    });
  };
}
