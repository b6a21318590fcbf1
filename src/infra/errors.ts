/**
 * Expected outcomes as typed errors with a stable code. One error handler (http-errors.ts)
 * turns them into Handle-style or generic bodies.
 */

/** Handle protocol response codes used by this node. */
export const ResponseCode = {
  SUCCESS: 1,
  ERROR: 2,
  SERVER_TOO_BUSY: 3,
  HANDLE_NOT_FOUND: 100,
  HANDLE_ALREADY_EXISTS: 101,
  INVALID_HANDLE: 102,
  VALUES_NOT_FOUND: 200,
  INVALID_VALUE: 202,
  NOT_AUTHORIZED: 400,
  INSUFFICIENT_PERMISSIONS: 401,
  AUTHENTICATION_NEEDED: 402,
} as const;

export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    /** Stable machine-readable code, e.g. PREFIX_NOT_OWNED. */
    readonly code: string,
    message: string,
    readonly statusCode: number,
    /** Handle responseCode for /api/handles bodies. */
    readonly responseCode: number = ResponseCode.ERROR,
    /** Structured facts about the error a client can act on (which template item failed and why). */
    readonly details?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
  }
}

export const errors = {
  invalidHandle: (message: string) => new AppError('INVALID_HANDLE', message, 400, ResponseCode.INVALID_HANDLE),
  invalidValue: (message: string) => new AppError('INVALID_VALUE', message, 400, ResponseCode.INVALID_VALUE),
  handleNotFound: (handle: string) => new AppError('HANDLE_NOT_FOUND', `handle ${handle} not found`, 404, ResponseCode.HANDLE_NOT_FOUND),
  handleExists: (handle: string) => new AppError('HANDLE_ALREADY_EXISTS', `handle ${handle} already exists`, 409, ResponseCode.HANDLE_ALREADY_EXISTS),
  versionMismatch: (message: string) => new AppError('PRECONDITION_FAILED', message, 412, ResponseCode.ERROR),
  authenticationNeeded: (message = 'authentication needed: send Authorization: Bearer <api key>') =>
    new AppError('AUTHENTICATION_NEEDED', message, 401, ResponseCode.AUTHENTICATION_NEEDED),
  invalidKey: () => new AppError('INVALID_API_KEY', 'the API key is unknown, revoked or expired', 401, ResponseCode.AUTHENTICATION_NEEDED),
  forbidden: (code: string, message: string) => new AppError(code, message, 403, ResponseCode.NOT_AUTHORIZED),
  badRequest: (code: string, message: string) => new AppError(code, message, 400, ResponseCode.ERROR),
  notFound: (code: string, message: string) => new AppError(code, message, 404, ResponseCode.ERROR),
  conflict: (code: string, message: string) => new AppError(code, message, 409, ResponseCode.ERROR),
  unavailable: (message: string) => new AppError('SERVICE_UNAVAILABLE', message, 503, ResponseCode.SERVER_TOO_BUSY),
};
