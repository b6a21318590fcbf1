/**
 * GET /{handle}?qr=svg|png: the QR code of a handle this node holds. Reached from the proxy view
 * only when the request has a query string naming `qr`, so resolution pays nothing for it.
 * A handle the node does not hold (not registered, or under another node's prefix) is 404: the
 * node prints codes only for identifiers it answers for.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isPrefixUnder, type Handle } from '../handle/handle.js';
import { errors } from '../infra/errors.js';
import { notModified } from './http-cache.js';
import { qrEtag, qrOptions, renderQr, resolutionUrl } from './qr.js';
import type { ResolverService } from './service.js';

/** The image does not change while the handle exists (only with PUBLIC_URL, which the tag covers). */
const CACHE_CONTROL = 'public, max-age=86400';

export async function sendQr(
  request: FastifyRequest,
  reply: FastifyReply,
  handle: Handle,
  resolver: ResolverService,
  nodePrefix: string,
  baseUrl: () => string,
): Promise<FastifyReply> {
  const options = qrOptions(request.query as Record<string, unknown>);
  if (!isPrefixUnder(handle.prefix, nodePrefix) || !(await resolver.exists(handle))) {
    throw errors.notFound('HANDLE_NOT_FOUND', `handle ${handle.handle} is not held by this node: no QR code for it`);
  }
  const text = resolutionUrl(baseUrl(), handle);
  const tag = qrEtag(text, options);
  reply.header('cache-control', CACHE_CONTROL).header('etag', tag).header('x-content-type-options', 'nosniff');
  // Weak comparison and `*`, as for resolution answers: a proxy that compresses the SVG weakens the tag.
  if (notModified(request, tag)) return reply.code(304).send();
  const image = renderQr(text, options);
  const name = `${handle.handle.replace(/[^A-Za-z0-9._-]+/g, '_')}.${options.format}`;
  if (options.format === 'svg') reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'");
  return reply.type(image.contentType).header('content-disposition', `inline; filename="${name}"`).send(image.body);
}
