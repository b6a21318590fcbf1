/** Response schemas shared by every module's routes. */
import Type from 'typebox';

/** Structured facts of an error, where it has them (a template violation: the template and its failed items). */
export const ErrorDetails = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Facts a client can act on, e.g. for TEMPLATE_VIOLATION: {template, violations: [{index, item, rule, message}]}.',
});

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable machine-readable code, e.g. PREFIX_NOT_OWNED.' }),
      message: Type.String(),
      requestId: Type.String(),
      details: Type.Optional(ErrorDetails),
    }),
  },
  { description: 'Error outside /api/handles' },
);

export const HandleErrorBody = Type.Object(
  {
    responseCode: Type.Integer({ description: 'Handle protocol response code (100 not found, 102 invalid handle, ...).' }),
    handle: Type.String({ description: 'The handle as the request named it (empty when it named none).' }),
    message: Type.String(),
    code: Type.String({ description: 'Stable machine-readable code.' }),
    details: Type.Optional(ErrorDetails),
  },
  { description: 'Handle-style error' },
);

/** A stored Handle value as resolution returns it. */
export const HandleValueSchema = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  type: Type.String(),
  data: Type.Object({ format: Type.String(), value: Type.Unknown() }),
  ttl: Type.Integer({ minimum: 0 }),
  timestamp: Type.String(),
  permissions: Type.Optional(Type.String()),
});

/** A resolution answer (GET /api/handles/{handle}, each item of POST /api/resolve). */
export const ResolutionSchema = Type.Object({
  responseCode: Type.Integer({ description: '1 found, 200 found but no value matched, 100 not found, 102 invalid handle.' }),
  handle: Type.String(),
  values: Type.Optional(Type.Array(HandleValueSchema)),
  message: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
});

export const RESOLUTION_EXAMPLE = {
  responseCode: 1,
  handle: '88.118.8/PART-0001',
  values: [
    { index: 1, type: 'URL', data: { format: 'string', value: 'https://example.com/parts/0001' }, ttl: 86400, timestamp: '2026-11-29T08:00:00.000Z' },
    { index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { handle: '0.NA/88.118.8', index: 200, permissions: '011111110011' } }, ttl: 86400, timestamp: '2026-11-29T08:00:00.000Z' },
  ],
};

/** Binary answers (protobuf, files) in the document. */
export const BINARY_SCHEMA = { type: 'string', format: 'binary' };

/** 304: the client's If-None-Match names the current version. */
export const NOT_MODIFIED = { description: 'Not modified: If-None-Match names the current version (ETag).', type: 'null' };

const EXAMPLE_REQUEST_ID = '6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13';

/** What each error status typically says, for the examples of the document. */
const ERROR_EXAMPLES: Record<string, { code: string; message: string; responseCode: number }> = {
  400: { code: 'VALIDATION_ERROR', message: "invalid body: body must have required property 'values'", responseCode: 202 },
  401: { code: 'AUTHENTICATION_NEEDED', message: 'authentication needed: send Authorization: Bearer <api key>', responseCode: 402 },
  403: { code: 'PREFIX_NOT_OWNED', message: 'this key may not write under prefix 88.118.9', responseCode: 400 },
  404: { code: 'HANDLE_NOT_FOUND', message: 'handle 88.118.8/PART-0404 not found', responseCode: 100 },
  409: { code: 'HANDLE_ALREADY_EXISTS', message: 'handle 88.118.8/PART-0001 already exists', responseCode: 101 },
  412: { code: 'PRECONDITION_FAILED', message: 'If-Match "2" does not match version 3', responseCode: 2 },
  413: { code: 'BODY_TOO_LARGE', message: 'Request body is too large', responseCode: 2 },
  415: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'unsupported content type: send application/json', responseCode: 2 },
  429: { code: 'RATE_LIMITED', message: 'rate limit exceeded (30000 requests per 60000 ms); retry after 12 seconds', responseCode: 3 },
  '4xx': { code: 'BAD_REQUEST', message: 'the request was refused', responseCode: 2 },
  '5xx': { code: 'SERVICE_UNAVAILABLE', message: 'the database is unavailable; retry shortly', responseCode: 3 },
};
const GENERIC_404 = { code: 'ENTERPRISE_NOT_FOUND', message: 'no enterprise 0b6f3c1e-5d2a-4c8b-9e7f-1a2b3c4d5e6f', responseCode: 2 };
const GENERIC_403 = { code: 'ROLE_NOT_ALLOWED', message: 'this route needs an admin key', responseCode: 400 };
const GENERIC_409 = { code: 'PREFIX_TAKEN', message: 'prefix 88.118.8 is allocated already', responseCode: 2 };

/** An example of the generic error body for a status (OpenAPI document). */
export function errorExample(status: string): unknown {
  const e = status === '404' ? GENERIC_404 : status === '403' ? GENERIC_403 : status === '409' ? GENERIC_409 : ERROR_EXAMPLES[status] ?? ERROR_EXAMPLES['4xx']!;
  return { error: { code: e.code, message: status === '400' ? "invalid body: body must have required property 'name'" : e.message, requestId: EXAMPLE_REQUEST_ID } };
}

/** An example of the Handle-style error body for a status (OpenAPI document). */
export function handleErrorExample(status: string): unknown {
  const e = ERROR_EXAMPLES[status] ?? ERROR_EXAMPLES['4xx']!;
  return { responseCode: e.responseCode, handle: '88.118.8/PART-0001', message: e.message, code: e.code };
}

/** A protobuf message on the wire (its definition is in proto/). */
export const PROTOBUF_BODY = { type: 'string', format: 'binary', description: 'A protobuf message (proto/).' };

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/** The error responses every authenticated generic route can give. */
export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
};

export const handleErrorResponses = {
  400: HandleErrorBody,
  401: HandleErrorBody,
  403: HandleErrorBody,
  404: HandleErrorBody,
  409: HandleErrorBody,
  412: HandleErrorBody,
};
