/**
 * Request validation. Query strings, params and headers arrive as text, so they are coerced to
 * the schema's types ("5" -> 5, one value -> an array); bodies are JSON and are taken as sent:
 * `"index":"1"` or `"ttl":null` is refused, never silently converted.
 *
 * `unicode: false`: maxLength and minLength count UTF-16 code units (String.length), not code
 * points. That is never looser (a character outside the BMP counts twice), and it spares a
 * per-character count of every string: 100 handles in POST /api/resolve cost about 7% of the
 * request's node CPU that way (alternating fresh nodes: 139 against 130 us).
 */
import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * ajv 8 warns that `unicode` is deprecated at every start; the option still works (pinned ajv;
 * test/unit/validation.test.ts fails if an upgrade drops it), so that one warning is not passed on.
 */
const logger = {
  log: console.log,
  warn: (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && args[0].startsWith('DEPRECATED: option unicode'))) console.warn(...args);
  },
  error: console.error,
};

const common: Options = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false, unicode: false, logger };

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));
  const strict = addFormats(new Ajv({ ...common, coerceTypes: false }));
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
