/** Redis goes away mid-run and comes back: resolution keeps answering, then the caches recover. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let sql: pg.Pool;
let node: TestNode;
let key: string;
let port: number;
let server: ChildProcess | undefined;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: p } = probe.address() as { port: number };
      probe.close(() => resolve(p));
    });
  });
}

/** A real redis-server of the test's own, so it can be stopped without touching anyone else's. */
async function startRedis(): Promise<void> {
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const probe = new Redis({ port, lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on('error', () => undefined);
  try {
    const deadline = Date.now() + 10_000;
    while ((await probe.ping().catch(() => 'down')) !== 'PONG') {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    probe.disconnect();
  }
}

async function stopRedis(): Promise<void> {
  const running = server;
  server = undefined;
  if (!running || running.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    running.once('exit', () => resolve());
    running.kill('SIGKILL');
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  port = await freePort();
  await startRedis();
  node = await startTestNode({ databaseUrl: db.url, redis: `redis://127.0.0.1:${port}` });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(901), '88.118.9'));
});

afterAll(async () => {
  await node?.close();
  await stopRedis();
  await sql?.end();
  await db?.drop();
});

const valueOf = async (handle: string) => {
  const r = await call(node.url, 'GET', `/api/handles/${handle}`);
  return r.status === 200 ? r.body.values[0].data.value : r.status;
};

describe('Redis down mid-run', () => {
  it('keeps resolving from Postgres while Redis is away, and the caches recover when it returns', async () => {
    expect((await call(node.url, 'PUT', '/api/handles/88.118.9/KEEP', { key, body: { values: [url('v1')] } })).status).toBe(200);
    expect(await valueOf('88.118.9/KEEP')).toBe('v1'); // now in L1 and Redis

    await stopRedis();
    // Registration and resolution of records the caches never saw: straight from Postgres.
    expect((await call(node.url, 'PUT', '/api/handles/88.118.9/DOWN', { key, body: { values: [url('while down')] } })).status).toBe(200);
    for (let i = 0; i < 20; i += 1) expect(await valueOf('88.118.9/DOWN')).toBe('while down');
    expect((await call(node.url, 'GET', '/api/handles/88.118.9/NEVER')).status).toBe(404);
    const ready = await call(node.url, 'GET', '/readyz');
    expect(ready.body.cache).toBe('down');

    // Behind the node's back while Redis is away: L1 may still say v1, but not after Redis returns.
    await sql.query(
      `UPDATE identifiers SET handle_values = jsonb_set(handle_values::jsonb, '{0,data,value}', '"behind"')::json WHERE prefix = '88.118.9' AND suffix = 'KEEP'`,
    );
    await startRedis();
    // Back: the node drops its L1 (it may have missed invalidations) and reads through again.
    await expect.poll(() => valueOf('88.118.9/KEEP'), { timeout: 15_000, interval: 100 }).toBe('behind');
    const fresh = new Redis({ port });
    try {
      await expect
        .poll(async () => {
          await valueOf('88.118.9/DOWN');
          return fresh.exists('snode:rec:88.118.9/DOWN', ...(await fresh.keys('*rec:88.118.9/DOWN')));
        }, { timeout: 15_000, interval: 100 })
        .toBeGreaterThan(0);
      await expect.poll(async () => (await call(node.url, 'GET', '/readyz')).body.cache, { timeout: 15_000, interval: 100 }).toBe('up');
    } finally {
      fresh.disconnect();
    }
  });
});
