/**
 * POST /bench/copy: the yardstick of the register-batch scenario. It takes the same body as
 * POST /api/handles/batch and writes its rows with a bare `COPY ... FROM STDIN` into
 * bench_copy_scratch, a table made `LIKE identifiers INCLUDING ALL` (same columns, defaults,
 * primary key and indexes): no validation, no ownership, no locks, no change sinks, no cache.
 * Both sides pay the same HTTP and JSON parsing, so their ratio is what the batch route costs
 * beyond storing the rows. DELETE /bench/copy drops the scratch table.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import Type from 'typebox';
import { parseHandleOrThrow } from '../infra/handle-http.js';

const SCRATCH = 'bench_copy_scratch';

/** A text-format COPY field: backslash, tab, newline and carriage return escaped. */
const field = (text: string): string => text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));

export function benchCopyRoute(pool: pg.Pool): FastifyPluginAsyncTypebox {
  let created: Promise<unknown> | undefined;
  const scratch = () => {
    created ??= pool.query(`CREATE TABLE IF NOT EXISTS ${SCRATCH} (LIKE identifiers INCLUDING ALL)`).catch((err: unknown) => {
      created = undefined;
      throw err;
    });
    return created;
  };
  return async (app) => {
    app.post('/bench/copy', {
      bodyLimit: 64 * 1024 * 1024,
      schema: {
        body: Type.Object({
          mode: Type.Optional(Type.String()),
          operations: Type.Array(Type.Object({ handle: Type.String({ maxLength: 1024 }), values: Type.Array(Type.Unknown()) }), { minItems: 1, maxItems: 100_000 }),
        }),
        response: { 200: Type.Object({ copied: Type.Integer() }) },
      },
    }, async (request) => {
      await scratch();
      const lines = request.body.operations.map((op) => {
        const { prefix, suffix } = parseHandleOrThrow(op.handle);
        return `${field(prefix)}\t${field(suffix)}\t${field(JSON.stringify(op.values))}\n`;
      });
      const client = await pool.connect();
      try {
        await pipeline(Readable.from([lines.join('')]), client.query(copyFrom(`COPY ${SCRATCH} (prefix, suffix, handle_values) FROM STDIN`)));
      } finally {
        client.release();
      }
      return { copied: lines.length };
    });

    app.delete('/bench/copy', { schema: { response: { 200: Type.Object({ dropped: Type.String() }) } } }, async () => {
      await pool.query(`DROP TABLE IF EXISTS ${SCRATCH}`);
      created = undefined;
      return { dropped: SCRATCH };
    });
  };
}
