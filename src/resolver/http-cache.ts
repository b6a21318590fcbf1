/** HTTP caching of resolution answers: Cache-Control from the entry's lifetime, ETag, 304. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { preferredType } from '../infra/accept.js';
import { coarseNow } from '../infra/coarse-clock.js';
import type { CacheEntry } from './cache-entry.js';
import { PROTOBUF_TYPE } from './protobuf.js';

export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The representation's entity tag: the record version, distinct per encoding and for an owner's
 * view that holds private values (`"3"`, `"3-pb"`, `"3-o"`, `"3-o-pb"`). The owner's answer is a
 * different representation from the public one (Vary: Authorization): with the same tag, a cache
 * revalidating the public copy for the owner would get a 304 and keep serving it without the
 * private values. Writes accept any of them in If-Match (they name the version).
 */
export function entityTag(version: number, proto: boolean, owner = false): string {
  if (owner) return proto ? `"${version}-o-pb"` : `"${version}-o"`;
  return proto ? `"${version}-pb"` : `"${version}"`;
}

/**
 * `public, max-age=<seconds left>` for the shared public view; `private` when the answer holds
 * values only the caller may see; `no-cache` when the entry is not cacheable.
 */
export function cacheControl(entry: CacheEntry, privateView: boolean): string {
  // Not cacheable (TTL 0, auth=true): revalidate every time; an owner's private values are also
  // kept out of shared caches whatever the request carried.
  if (entry.expiresAt === 0) return privateView ? 'private, no-cache' : 'no-cache';
  const seconds = Math.max(0, Math.floor((entry.expiresAt - coarseNow()) / 1000));
  if (privateView) return `private, max-age=${seconds}`;
  // The public values are made once per second count and kept (at most CACHE_MAX_TTL of them):
  // every cached answer carries one, and building the string was a measurable part of an L1 hit.
  let value = PUBLIC_MAX_AGE[seconds];
  if (value === undefined) PUBLIC_MAX_AGE[seconds] = value = `public, max-age=${seconds}`;
  return value;
}

const PUBLIC_MAX_AGE: string[] = [];

/** If-None-Match (weak comparison, as RFC 9110 asks for it): does the client hold this tag? */
export function notModified(request: FastifyRequest, tag: string): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === tag);
}

/** Headers every resolution answer carries; answers 304 when the client's copy is current. */
export function cacheHeaders(request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, proto: boolean, privateView: boolean): boolean {
  reply.header('cache-control', cacheControl(entry, privateView));
  reply.header('vary', 'Accept, Authorization');
  if (!entry.found) return false;
  const tag = privateView ? entityTag(entry.version, proto, true) : entry.etag(proto);
  reply.header('etag', tag);
  return notModified(request, tag);
}

const MENTIONS_PROTOBUF = /protobuf/i;
const MENTIONS_HTML = /text\/(?:html|\*)/i;

/**
 * Does the client prefer protobuf to JSON? A header that does not name protobuf at all, the usual
 * case, is not parsed.
 */
export function wantsProtobuf(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  if (accept === undefined || !MENTIONS_PROTOBUF.test(accept)) return false;
  return preferredType(accept, ['application/json', PROTOBUF_TYPE]) === PROTOBUF_TYPE;
}

/** Does the client (a browser) prefer an HTML page to JSON? */
export function wantsHtml(accept: string | undefined): boolean {
  if (accept === undefined || !MENTIONS_HTML.test(accept)) return false;
  return preferredType(accept, ['application/json', 'text/html']) === 'text/html';
}
