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
  index: Type.Integer(),
  type: Type.String(),
  data: Type.Object({ format: Type.String(), value: Type.Unknown() }),
  ttl: Type.Integer(),
  timestamp: Type.String(),
  permissions: Type.Optional(Type.String()),
});

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
