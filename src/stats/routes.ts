/** /api/stats/*: overview, series, top enterprises and the period report (JSON or CSV). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { preferredType } from '../infra/accept.js';
import { reportCsv } from './csv.js';
import type { StatsService } from './service.js';

const Registrations = Type.Object({ creates: Type.Integer(), updates: Type.Integer(), deletes: Type.Integer() });
const Resolutions = Type.Object({ found: Type.Integer(), notFound: Type.Integer(), cached: Type.Integer(), total: Type.Integer() });
const Day = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD' });
const PeriodLabel = Type.String({ maxLength: 10, description: 'YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD' });
const SeriesQuery = Type.Object({
  from: Type.Optional(Day),
  to: Type.Optional(Day),
  granularity: Type.Optional(Type.Enum(['day', 'month', 'quarter'])),
  prefix: Type.Optional(Type.String({ maxLength: 200 })),
  enterprise: Type.Optional(Type.String({ maxLength: 64 })),
});
const seriesResponse = (item: ReturnType<typeof Type.Object>) =>
  Type.Object({
    metric: Type.String(),
    granularity: Type.String(),
    from: Type.String(),
    to: Type.String(),
    series: Type.Array(Type.Intersect([Type.Object({ period: Type.String(), start: Type.String() }), item])),
  });
const ReportRow = Type.Object({
  enterprise: Type.String(),
  uscc: Type.String(),
  prefix: Type.String(),
  prefixState: Type.String(),
  identifiers: Type.Integer(),
  creates: Type.Integer(),
  updates: Type.Integer(),
  deletes: Type.Integer(),
  resolutionsFound: Type.Integer(),
  resolutionsNotFound: Type.Integer(),
  resolutionsCached: Type.Integer(),
  resolutionsTotal: Type.Integer(),
});

export function statsRoutes(stats: StatsService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/overview', {
      schema: {
        response: {
          200: Type.Object({
            timeZone: Type.String(),
            today: Type.String(),
            identifiers: Type.Integer(),
            enterprises: Type.Integer(),
            prefixes: Type.Record(Type.String(), Type.Integer()),
            registrations: Type.Object({ today: Registrations, month: Registrations, quarter: Registrations }),
            resolutions: Type.Object({ today: Resolutions, month: Resolutions, quarter: Resolutions }),
          }),
        },
      },
    }, async (request) => stats.overview(request.actor));

    app.get('/registrations', { schema: { querystring: SeriesQuery, response: { 200: seriesResponse(Registrations) } } }, async (request) =>
      stats.series(request.actor, 'registrations', request.query),
    );

    app.get('/resolutions', { schema: { querystring: SeriesQuery, response: { 200: seriesResponse(Resolutions) } } }, async (request) =>
      stats.series(request.actor, 'resolutions', request.query),
    );

    app.get('/top', {
      schema: {
        querystring: Type.Object({
          metric: Type.Enum(['registrations', 'resolutions']),
          period: Type.Optional(PeriodLabel),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 10 })),
        }),
        response: {
          200: Type.Object({
            metric: Type.String(),
            period: Type.String(),
            from: Type.String(),
            to: Type.String(),
            items: Type.Array(Type.Object({ enterpriseId: Type.String(), name: Type.String(), uscc: Type.String(), value: Type.Integer() })),
          }),
        },
      },
    }, async (request) => stats.top(request.actor, request.query.metric, request.query.period, request.query.limit ?? 10));

    app.get('/report', {
      schema: {
        querystring: Type.Object({ period: PeriodLabel, format: Type.Optional(Type.Enum(['json', 'csv'])) }),
        response: {
          200: {
            description: 'The report: JSON, or CSV (UTF-8 with BOM) with format=csv or Accept: text/csv.',
            content: {
              'application/json': {
                schema: Type.Object({ period: Type.String(), from: Type.String(), to: Type.String(), timeZone: Type.String(), generatedAt: Type.String(), rows: Type.Array(ReportRow) }, {
                  examples: [{
                    period: '2026-Q4', from: '2026-10-01', to: '2026-12-31', timeZone: 'Asia/Shanghai', generatedAt: '2026-11-29T08:00:00.000Z',
                    rows: [{ enterprise: '南京示例制造有限公司', uscc: '91320115MA1WXY7Q4L', prefix: '88.118.8', prefixState: 'active', identifiers: 1200, creates: 1250, updates: 310, deletes: 50, resolutionsFound: 48211, resolutionsNotFound: 372, resolutionsCached: 47002, resolutionsTotal: 48583 }],
                  }],
                }),
              },
              'text/csv': { schema: Type.String({ examples: [reportCsv([])] }) },
            },
          },
        },
      },
    }, async (request, reply) => {
      const report = await stats.report(request.actor, request.query.period);
      const csv = request.query.format === 'csv' || (request.query.format === undefined && preferredType(request.headers.accept, ['application/json', 'text/csv']) === 'text/csv');
      if (!csv) return report;
      reply.header('content-disposition', `attachment; filename="snode-report-${report.period}.csv"`);
      return reply.type('text/csv; charset=utf-8').send(reportCsv(report.rows) as never);
    });
  };
}
