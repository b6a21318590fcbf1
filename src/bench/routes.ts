/**
 * Routes that exist only with BENCH_ROUTES=1: the ceiling the bench compares against, and a seed
 * that loads many identifiers in a few statements. Seeded rows bypass the change sinks (they are
 * load-test data: not synced, not audited) but are counted as created, so statistics match the data.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type pg from 'pg';
import Type from 'typebox';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import { requireRole } from '../tenancy/auth.js';
import { BENCH_SUFFIX, benchValuesJson, ceilingBody } from './records.js';

const CHUNK = 50_000;

export function benchRoutes(pool: pg.Pool, nodePrefix: string, timeZone: string): FastifyPluginAsyncTypebox {
  const body = ceilingBody(`${nodePrefix}.1`);
  return async (app) => {
    // Same URL shape as a resolution, fixed bytes back: what the framework alone costs.
    app.get('/bench/ceiling/*', { schema: { params: Type.Object({ '*': Type.String({ maxLength: 1024 }) }) } }, async (_request, reply) => {
      return reply.type('application/json; charset=utf-8').send(body);
    });

    app.post('/bench/seed', {
      onRequest: requireRole('admin'),
      schema: {
        body: Type.Object({
          prefix: Type.String({ minLength: 1, maxLength: 200 }),
          count: Type.Integer({ minimum: 1, maximum: 100_000_000 }),
          start: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
        }, { additionalProperties: false }),
      },
    }, async (request) => {
      const { prefix, count } = request.body;
      const start = request.body.start ?? 0;
      parseHandleOrThrow(`${prefix}/${BENCH_SUFFIX}0`);
      const { json, placeholder } = benchValuesJson(prefix);
      let inserted = 0;
      for (let from = start; from < start + count; from += CHUNK) {
        const to = Math.min(from + CHUNK, start + count) - 1;
        const result = await pool.query(
          `INSERT INTO identifiers (prefix, suffix, handle_values)
           SELECT $1, $2 || i, replace($3, $4, $2 || i)::json FROM generate_series($5::bigint, $6::bigint) AS i
           ON CONFLICT (prefix, suffix) DO NOTHING`,
          [prefix, BENCH_SUFFIX, json, placeholder, from, to],
        );
        inserted += result.rowCount ?? 0;
      }
      // Seeded rows count as created today, so statistics still equal the data.
      if (inserted > 0) {
        await pool.query(
          `INSERT INTO stats_registration_deltas (prefix, day, creates) VALUES ($1, (now() AT TIME ZONE $2)::date, $3)`,
          [prefix, timeZone, inserted],
        );
      }
      return { prefix, first: `${prefix}/${BENCH_SUFFIX}${start}`, count, inserted };
    });
  };
}
