/**
 * Routes that exist only with BENCH_ROUTES=1: the ceiling the bench compares against, seeds that
 * load many identifiers (and statistics history) in a few statements, and count(*) as a
 * yardstick. Seeded rows bypass the change sinks (they are load-test data: not synced, not
 * audited) but are counted as created, so statistics match the data.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type pg from 'pg';
import Type from 'typebox';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import { usccCheckCharacter } from '../handle/uscc.js';
import { dayIn } from '../stats/periods.js';
import { appendRegistrationDeltas, rollupUpsert } from '../stats/repository.js';
import { benchCopyRoute } from './copy-route.js';
import { BENCH_SUFFIX, benchValuesJson, ceilingBody } from './records.js';

const CHUNK = 50_000;

/** What the stats scenario compares every stats route against. */
const COUNT_IDENTIFIERS = 'SELECT count(*) AS n FROM identifiers';

export function benchRoutes(pool: pg.Pool, nodePrefix: string, timeZone: string): FastifyPluginAsyncTypebox {
  const body = ceilingBody(`${nodePrefix}.1`);
  return async (app) => {
    await app.register(benchCopyRoute(pool));

    // Same URL shape as a resolution, fixed bytes back: what the framework alone costs.
    app.get('/bench/ceiling/*', {
      schema: {
        params: Type.Object({ '*': Type.String({ maxLength: 1024 }) }),
        response: { 200: { description: 'Fixed bytes shaped like a resolution.', content: { 'application/json': { schema: Type.String({ examples: ['{"responseCode":1,"handle":"88.118.1/BENCH-0","values":[]}'] }) } } } },
      },
    }, async (_request, reply) => {
      return reply.type('application/json; charset=utf-8').send(body as never);
    });

    app.post('/bench/seed', {
      schema: {
        body: Type.Object({
          prefix: Type.String({ minLength: 1, maxLength: 200 }),
          count: Type.Integer({ minimum: 1, maximum: 100_000_000 }),
          start: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ prefix: Type.String(), first: Type.String(), count: Type.Integer(), inserted: Type.Integer() }) },
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
      if (inserted > 0) await appendRegistrationDeltas(pool, [{ prefix, day: dayIn(timeZone), counts: [inserted, 0, 0] }]);
      return { prefix, first: `${prefix}/${BENCH_SUFFIX}${start}`, count, inserted };
    });

    // A node with history: enterprises, one prefix each (NODE_PREFIX.B<k>), identifiers under
    // every prefix, and `days` of daily statistics before today for registrations and resolutions.
    app.post('/bench/seed-stats', {
      schema: {
        body: Type.Object({
          enterprises: Type.Integer({ minimum: 1, maximum: 100_000 }),
          identifiersPerPrefix: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
          days: Type.Integer({ minimum: 0, maximum: 3660 }),
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ enterprises: Type.Integer(), prefixes: Type.Integer(), identifiers: Type.Integer(), days: Type.Integer() }) },
      },
    }, async (request) => {
      const { enterprises, identifiersPerPrefix, days } = request.body;
      const prefixes = Array.from({ length: enterprises }, (_, k) => `${nodePrefix}.B${k}`);
      const codes = prefixes.map((_, k) => {
        const first17 = `91320115B${String(k).padStart(8, '0')}`;
        return `${first17}${usccCheckCharacter(first17)}`;
      });
      await pool.query(
        `WITH e AS (
           INSERT INTO enterprises (name, uscc)
           SELECT 'Bench Enterprise ' || k, code FROM unnest($1::text[]) WITH ORDINALITY AS t(code, k)
           ON CONFLICT (uscc) DO UPDATE SET name = EXCLUDED.name RETURNING id, uscc
         )
         INSERT INTO prefixes (prefix, enterprise_id)
         SELECT p.prefix, e.id FROM unnest($1::text[], $2::text[]) AS p(code, prefix) JOIN e ON e.uscc = p.code
         ON CONFLICT (prefix) DO NOTHING`,
        [codes, prefixes],
      );
      const { json, placeholder } = benchValuesJson(nodePrefix);
      let inserted = 0;
      if (identifiersPerPrefix > 0) {
        for (let i = 0; i < prefixes.length; i += Math.max(1, Math.floor(CHUNK / identifiersPerPrefix))) {
          const batch = prefixes.slice(i, i + Math.max(1, Math.floor(CHUNK / identifiersPerPrefix)));
          const result = await pool.query(
            `WITH ins AS (
               INSERT INTO identifiers (prefix, suffix, handle_values)
               SELECT p, $2 || n, replace($3, $4, $2 || n)::json FROM unnest($1::text[]) AS p, generate_series(0, $5::int - 1) AS n
               ON CONFLICT (prefix, suffix) DO NOTHING RETURNING prefix
             )
             INSERT INTO stats_registration_deltas (prefix, day, creates)
             SELECT prefix, (now() AT TIME ZONE $6)::date, count(*) FROM ins GROUP BY prefix
             RETURNING creates`,
            [batch, BENCH_SUFFIX, json, placeholder, identifiersPerPrefix, timeZone],
          );
          inserted += result.rows.reduce((n, r: { creates: number }) => n + Number(r.creates), 0);
        }
      }
      // History is seeded once: a second call must not add it again.
      const seeded = await pool.query(
        `SELECT 1 FROM stats_registrations WHERE grain = 'd' AND prefix = $1 AND bucket < (now() AT TIME ZONE $2)::date LIMIT 1`,
        [prefixes[0], timeZone],
      );
      if (days > 0 && seeded.rowCount === 0) {
        // `days` of made-up daily figures per prefix, added to every rollup grain as real ones are.
        const history = (a: string, b: string, c: string) => `WITH history AS (
            SELECT p AS prefix, (now() AT TIME ZONE $3)::date - d AS day, (d * 7 + length(p)) % 50 AS ${a}, (d * 3) % 20 AS ${b}, d % 5 AS ${c}
            FROM unnest($1::text[]) AS p, generate_series(1, $2::int) AS d
          )`;
        await pool.query(`${history('creates', 'updates', 'deletes')} ${rollupUpsert('registrations', 'history')}`, [prefixes, days, timeZone]);
        await pool.query(`${history('found', 'not_found', 'cached')} ${rollupUpsert('resolutions', 'history')}`, [prefixes, days, timeZone]);
      }
      await pool.query('ANALYZE');
      return { enterprises, prefixes: prefixes.length, identifiers: inserted, days };
    });

    // The yardstick for the stats scenario: counting identifiers the slow way.
    app.get('/bench/count-identifiers', { schema: { response: { 200: Type.Object({ identifiers: Type.Integer() }) } } }, async () => {
      const { rows } = await pool.query<{ n: string }>(COUNT_IDENTIFIERS);
      return { identifiers: Number(rows[0]!.n) };
    });
  };
}
