/** The one error handler: typed errors and framework errors become stable bodies, 5xx never leak. */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ResponseCode } from './errors.js';
import { isDatabaseUnavailable } from './postgres.js';

const HANDLE_API = '/api/handles';

/** Framework error codes with the stable code and status this API answers with. */
const FRAMEWORK_ERRORS: Record<string, { code: string; status: number; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', status: 415, message: 'unsupported content type: send application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'INVALID_CONTENT_LENGTH', status: 400 },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'BODY_TOO_LARGE', status: 413 },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_JSON', status: 400, message: 'the body is empty but content-type is application/json' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_JSON', status: 400 },
  FST_ERR_CTP_INVALID_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', status: 415 },
  FST_ERR_BAD_URL: { code: 'BAD_URL', status: 400, message: 'the URL is not valid (bad percent-encoding?)' },
  FST_ERR_ASYNC_CONSTRAINT: { code: 'BAD_REQUEST', status: 400 },
};

export function isHandleApi(request: FastifyRequest): boolean {
  const path = request.url.split('?', 1)[0] ?? '';
  return path === HANDLE_API || path.startsWith(`${HANDLE_API}/`);
}

/** The handle a /api/handles request names, as the client wrote it (for error bodies). */
function handleOf(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, string> | undefined;
  if (params && typeof params['*'] === 'string') return params['*'];
  const path = request.url.split('?', 1)[0] ?? '';
  if (!path.startsWith(`${HANDLE_API}/`)) return undefined;
  const raw = path.slice(HANDLE_API.length + 1);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

interface Outcome {
  status: number;
  code: string;
  message: string;
  responseCode: number;
  details?: Readonly<Record<string, unknown>>;
}

function classify(error: FastifyError | AppError | Error): Outcome {
  if (error instanceof AppError) {
    return { status: error.statusCode, code: error.code, message: error.message, responseCode: error.responseCode, ...(error.details ? { details: error.details } : {}) };
  }
  const fe = error as FastifyError;
  if (fe.validation) {
    const where = fe.validationContext ?? 'request';
    const responseCode = where === 'body' ? ResponseCode.INVALID_VALUE : ResponseCode.ERROR;
    return { status: 400, code: 'VALIDATION_ERROR', message: `invalid ${where}: ${fe.message}`, responseCode };
  }
  const known = fe.code ? FRAMEWORK_ERRORS[fe.code] : undefined;
  if (known) {
    return { status: known.status, code: known.code, message: known.message ?? fe.message, responseCode: ResponseCode.ERROR };
  }
  if (error instanceof SyntaxError && fe.statusCode === 400) {
    return { status: 400, code: 'INVALID_JSON', message: `the body is not valid JSON: ${error.message}`, responseCode: ResponseCode.ERROR };
  }
  if (isDatabaseUnavailable(error)) {
    return { status: 503, code: 'SERVICE_UNAVAILABLE', message: 'the database is unavailable; retry shortly', responseCode: ResponseCode.SERVER_TOO_BUSY };
  }
  const status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  if (status < 500) return { status, code: 'BAD_REQUEST', message: fe.message, responseCode: ResponseCode.ERROR };
  return { status: 500, code: 'INTERNAL_ERROR', message: 'internal error; quote the request id when reporting it', responseCode: ResponseCode.ERROR };
}

export function sendError(request: FastifyRequest, reply: FastifyReply, outcome: Outcome): FastifyReply {
  reply.code(outcome.status);
  if (isHandleApi(request)) {
    const body = { responseCode: outcome.responseCode, handle: handleOf(request) ?? '', message: outcome.message, code: outcome.code };
    return reply.send(outcome.details ? { ...body, details: outcome.details } : body);
  }
  const error = { code: outcome.code, message: outcome.message, requestId: request.id };
  return reply.send({ error: outcome.details ? { ...error, details: outcome.details } : error });
}

/**
 * For fastify's `frameworkErrors` option: errors raised before routing (bad percent-encoding in
 * the URL, a bad Content-Type header) answer with the same stable bodies as everything else,
 * not fastify's default `FST_ERR_*` body.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  sendError(request, reply, classify(error));
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const outcome = classify(error);
    if (outcome.status === 503) request.log.warn({ err: error.message }, 'request refused: database unavailable');
    else if (outcome.status >= 500) request.log.error({ err: error }, 'request failed');
    else if (!(error instanceof AppError)) request.log.info({ code: outcome.code, reason: error.message }, 'request refused');
    return sendError(request, reply, outcome);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, {
      status: 404,
      code: 'ROUTE_NOT_FOUND',
      message: `no route for ${request.method} ${request.url.split('?', 1)[0]}`,
      responseCode: ResponseCode.ERROR,
    }),
  );
}
