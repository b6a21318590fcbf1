/** A keep-alive connection whose request is in flight when closing starts must not hold the close open. */
import http from 'node:http';
import { PassThrough } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { closeKeepAliveOnShutdown } from '../../src/infra/graceful-close.js';

const agents: http.Agent[] = [];
afterEach(() => {
  for (const agent of agents.splice(0)) agent.destroy();
});

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
}

function get(url: string, agent: http.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
      })
      .on('error', reject);
  });
}

/** A server whose /slow request waits for release(); keep-alive far beyond the test timeout. */
async function slowServer(): Promise<{ app: FastifyInstance; address: string; inFlight: Promise<void>; release: () => void; closing: Promise<void> }> {
  const app = Fastify({ keepAliveTimeout: 600_000 });
  closeKeepAliveOnShutdown(app);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const inFlight = new Promise<void>((r) => (arrived = r));
  // Registered after the hook under test, so it runs once that hook has run.
  const closing = new Promise<void>((r) => app.addHook('preClose', async () => r()));
  app.get('/slow', async () => {
    arrived();
    await held;
    return { ok: true };
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, address, inFlight, release, closing };
}

describe('closeKeepAliveOnShutdown', () => {
  it('answers a request in flight at close with Connection: close, and close() finishes', async () => {
    const { app, address, inFlight, release, closing } = await slowServer();
    const agent = new http.Agent({ keepAlive: true });
    agents.push(agent);
    const response = get(`${address}/slow`, agent);
    await inFlight;
    const closed = app.close();
    await closing;
    release();
    const reply = await response;
    expect(reply).toEqual({ status: 200, connection: 'close', body: '{"ok":true}' });
    await closed;
    expect(app.server.listening).toBe(false);
  });

  it('sweeps a connection that falls idle after closing began, though its reply said keep-alive', async () => {
    const app = Fastify({ keepAliveTimeout: 600_000 });
    closeKeepAliveOnShutdown(app);
    const body = new PassThrough();
    let sent!: () => void;
    const headersSent = new Promise<void>((r) => (sent = r));
    app.get('/stream', async (_request, reply) => {
      reply.header('content-type', 'text/plain');
      setImmediate(sent);
      return reply.send(body);
    });
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const agent = new http.Agent({ keepAlive: true });
    agents.push(agent);
    const response = get(`${address}/stream`, agent);
    await headersSent;
    body.write('part one ');
    const closed = app.close();
    // Wait until the listener is closed (preClose hooks run first), then let the response finish.
    while (app.server.listening) await new Promise((r) => setImmediate(r));
    body.end('part two');
    const reply = await response;
    expect(reply).toEqual({ status: 200, connection: 'keep-alive', body: 'part one part two' });
    // The socket went idle after server.close(): only the sweep ends it before keepAliveTimeout.
    await closed;
    expect(app.server.listening).toBe(false);
  });
});
