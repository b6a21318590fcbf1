/**
 * Keep-alive connections must not hold a graceful shutdown open.
 *
 * server.close() drops only the connections idle at that instant; a connection whose request was
 * in flight becomes idle afterwards and would stay open until keepAliveTimeout (72 s in fastify),
 * far past SHUTDOWN_TIMEOUT_MS. So once closing starts, responses carry `Connection: close` and
 * connections that fall idle are swept until the server has closed.
 */
import type { FastifyInstance } from 'fastify';

const SWEEP_MS = 50;

export function closeKeepAliveOnShutdown(app: FastifyInstance): void {
  let closing = false;
  let sweep: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    closing = true;
    sweep = setInterval(() => app.server.closeIdleConnections(), SWEEP_MS);
    sweep.unref();
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onClose', async () => {
    clearInterval(sweep);
  });
}
