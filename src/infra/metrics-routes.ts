/** GET /metrics on the API port (auditor and admin keys; METRICS_PORT moves it to a listener of its own). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Metrics } from './metrics.js';

export const METRICS_EXAMPLE = `# HELP snode_resolutions_total Resolved handles by the tier that answered (l1, redis, postgres, upstream) and outcome (found; miss: no such handle).
# TYPE snode_resolutions_total counter
snode_resolutions_total{tier="l1",outcome="found"} 1843
snode_resolutions_total{tier="postgres",outcome="miss"} 12
# HELP snode_http_request_duration_seconds HTTP requests by method, route (as registered) and status: duration histogram; its _count is the request counter.
# TYPE snode_http_request_duration_seconds histogram
snode_http_request_duration_seconds_bucket{method="GET",route="/api/handles/*",status="200",le="0.0005"} 1790
snode_http_request_duration_seconds_count{method="GET",route="/api/handles/*",status="200"} 1843
`;

export function metricsRoutes(metrics: Metrics): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/metrics', {
      schema: {
        summary: 'Prometheus metrics',
        description: 'The Prometheus text format (0.0.4): requests by route and status, resolutions by tier, caches, the Postgres pool, Redis, federation, event-loop delay and the process. Needs an auditor or admin key here; with METRICS_PORT set it moves to a listener of its own, without a key.',
        tags: ['operations'],
        response: { 200: { description: 'The metrics', content: { 'text/plain': { schema: Type.String({ examples: [METRICS_EXAMPLE] }) } } } },
      },
    }, async (_request, reply) => {
      const body = await metrics.text();
      return reply.header('cache-control', 'no-store').type(metrics.contentType).send(body);
    });
  };
}
