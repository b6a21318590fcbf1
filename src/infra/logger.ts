/** pino, shared by fastify and the rest of the process. Secrets never reach the log. */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'key',
  'apiKey',
  'password',
  'secret',
  '*.key',
  '*.apiKey',
  '*.password',
  '*.secret',
];

/** `toStderr` keeps stdout clean for CLI commands whose output is data. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, toStderr = false): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination(toStderr ? 2 : 1),
  );
}
