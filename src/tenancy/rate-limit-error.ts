/** The answer to a request over its rate limit: one body and one set of headers for every policy. */
import type { FastifyReply } from 'fastify';
import { AppError, ResponseCode } from '../infra/errors.js';

/** Whole seconds until the window ends (`ttlMs` is what is left of it), at least one. */
const retrySeconds = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs / 1000));

/** The 429 error; `ttlMs` is what is left of the window. */
export function rateLimitError(max: number, windowMs: number, ttlMs: number): AppError {
  const seconds = retrySeconds(ttlMs);
  return new AppError('RATE_LIMITED', `rate limit exceeded (${max} requests per ${windowMs} ms); retry after ${seconds} second${seconds === 1 ? '' : 's'}`, 429, ResponseCode.SERVER_TOO_BUSY);
}

/**
 * Sets the headers @fastify/rate-limit sets on a refusal (x-ratelimit-limit, -remaining, -reset,
 * retry-after) and gives the error, for the hooks that count without the plugin.
 */
export function rateLimited(reply: FastifyReply, max: number, windowMs: number, ttlMs: number): AppError {
  const seconds = retrySeconds(ttlMs);
  reply.header('x-ratelimit-limit', max).header('x-ratelimit-remaining', 0).header('x-ratelimit-reset', seconds).header('retry-after', seconds);
  return rateLimitError(max, windowMs, ttlMs);
}
