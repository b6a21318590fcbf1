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
  // A callback hook: an async one made every response a promise and sent it from a microtask.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onClose', async () => {
    clearInterval(sweep);
  });
}
