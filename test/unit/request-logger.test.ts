/** request.log made on first use: the same lines as pino's child, and no child for a request that never logs. */
import { Writable } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { REDACT_PATHS } from '../../src/infra/logger.js';
import { lazyRequestLogger } from '../../src/infra/request-logger.js';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk, _enc, done) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); done(); } });
  const log = pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  let children = 0;
  // Counts request loggers: children bound to a request id, made of this logger or any descendant
  // (they inherit this property; fastify may hold a child of the instance as its root).
  const child = log.child;
  log.child = function (this: typeof log, ...args: Parameters<typeof child>) {
    if ('requestId' in (args[0] ?? {})) children += 1;
    return child.apply(this, args);
  } as typeof log.child;
  return { log, lines, children: () => children };
}

const apps: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function appWith(log: FastifyBaseLogger) {
  const app = Fastify({ loggerInstance: log, childLoggerFactory: lazyRequestLogger, logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }), genReqId: () => 'req-1' });
  app.get('/quiet', async () => ({ ok: true }));
  app.get('/talk', async (request) => {
    request.log.info({ key: 'snk_secret', n: 1 }, 'talking');
    request.log.debug('not at info');
    request.log.child({ step: 'two' }).warn('from a child');
    return { ok: true };
  });
  app.get('/fail', async () => {
    throw new Error('boom');
  });
  // As the node's error handler does (infra/http-errors.ts): fastify's own error line is off with request logging.
  app.setErrorHandler((error, request, reply) => {
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send({ message: 'failed' });
  });
  apps.push(app);
  await app.ready();
  return app;
}

describe('lazy request logger', () => {
  it('makes no child logger for a request that does not log', async () => {
    const c = capture('info');
    const app = await appWith(c.log);
    const before = c.children();
    for (let i = 0; i < 5; i += 1) expect((await app.inject({ url: '/quiet' })).statusCode).toBe(200);
    expect(c.children()).toBe(before);
    expect(c.lines).toEqual([]);
  });

  it('writes what a child would: the request id bound, redaction applied, levels respected', async () => {
    const c = capture('info');
    const app = await appWith(c.log);
    expect((await app.inject({ url: '/talk' })).statusCode).toBe(200);
    const talking = c.lines.find((l) => l.msg === 'talking');
    expect(talking).toMatchObject({ requestId: 'req-1', n: 1, key: '[redacted]', level: 30 });
    expect(c.lines.some((l) => l.msg === 'not at info')).toBe(false);
    expect(c.lines.find((l) => l.msg === 'from a child')).toMatchObject({ requestId: 'req-1', step: 'two', level: 40 });
  });

  it('carries the request id on an error handler\'s line', async () => {
    const c = capture('info');
    const app = await appWith(c.log);
    expect((await app.inject({ url: '/fail' })).statusCode).toBe(500);
    const line = c.lines.find((l) => l.level === 50);
    expect(line).toMatchObject({ requestId: 'req-1' });
    expect(JSON.stringify(line)).toContain('boom');
  });

  it('follows a level set on the request logger', async () => {
    const c = capture('info');
    const lazy = lazyRequestLogger(c.log, { requestId: 'r2' }, {});
    expect(lazy.level).toBe('info');
    lazy.debug('hidden');
    lazy.level = 'debug';
    lazy.debug('shown');
    await new Promise((r) => setImmediate(r));
    expect(c.lines.map((l) => l.msg)).toEqual(['shown']);
    expect(c.lines[0]).toMatchObject({ requestId: 'r2', level: 20 });
    expect(c.log.level).toBe('info');
  });
});
