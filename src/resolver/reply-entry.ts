/** Writing a cache entry as one caller's answer, JSON or protobuf, with HTTP caching headers. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isPublicView, viewBody, type View } from './answers.js';
import type { CacheEntry } from './cache-entry.js';
import { cacheHeaders, JSON_TYPE, wantsProtobuf } from './http-cache.js';
import { encodeResolution, PROTOBUF_TYPE } from './protobuf.js';

/** Sends an entry as this caller's answer: ready bytes for the public view, built otherwise. */
export function sendEntry(request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, view: View, pretty: boolean): FastifyReply {
  const proto = wantsProtobuf(request);
  const ready = isPublicView(entry, view) && !pretty;
  // A new reply's status is 200 already.
  if (!entry.found) reply.code(404);
  reply.header('content-type', proto ? PROTOBUF_TYPE : JSON_TYPE);
  if (cacheHeaders(request, reply, entry, proto, view.owner && entry.found && entry.hasPrivate)) {
    return reply.code(304).send();
  }
  if (ready) return reply.send(proto ? entry.proto : entry.json);
  const body = entry.found ? viewBody(entry, view) : JSON.parse(entry.json.toString('utf8'));
  if (proto) return reply.send(encodeResolution(body));
  return reply.send(pretty ? JSON.stringify(body, null, 2) : JSON.stringify(body));
}

