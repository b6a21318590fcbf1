/**
 * The sync-drain scenario: how fast a secondary node's outbox drains to a top-level node, against
 * how fast the same node registers the changes through its fastest registration route, in one run.
 *
 * 1. Two databases beside --database-url's (created, dropped at the end); a secondary node with
 *    UPSTREAM_URLS pointing at a port where nothing listens yet, registered (register-node) on the
 *    top-level node's database.
 * 2. Register: N identifiers through POST /api/handles/batch, 1,000 a request (the node's fastest write route)
 *    under autocannon; the rate is N / elapsed. Nothing drains: the top-level node is not running.
 * 3. Drain: start the top-level node; from the moment it listens until the secondary's backlog is 0,
 *    the rate is N / elapsed (the sender's retry delay is capped at SYNC_RETRY_MAX_MS=200 here).
 * 4. `snode federation verify` must report no drift: every change arrived, once.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { runLoad } from './load.js';
import { NODE_MAIN, NodeProcess } from './node-process.js';
import { note } from './progress.js';
import { deleteKeys } from './redis.js';
import type { ScenarioResult } from './report.js';
import type { ScenarioName } from './scenarios.js';

const run = promisify(execFile);

export interface DrainOptions {
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  changes: number;
  connections: number;
  signal: AbortSignal;
}

export interface DrainDetail {
  changes: number;
  route: string;
  registerSeconds: number;
  registerPerSec: number;
  drainSeconds: number;
  drainPerSec: number;
  ratio: number;
  batchSize: number;
  verify: { inSync: boolean; drift: boolean };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const withDb = (url: string, name: string): string => {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
};

async function json(url: string, method: string, key: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function measureSyncDrain(name: ScenarioName, options: DrainOptions): Promise<ScenarioResult> {
  if (!options.databaseUrl) {
    return { name, config: 'secondary + top-level', status: 'skipped', note: 'needs --database-url (or DATABASE_URL): it creates two databases on that server' };
  }
  const tag = randomBytes(4).toString('hex');
  const dbs = { top: `snode_bench_drain_${tag}_top`, node: `snode_bench_drain_${tag}_node` };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'snode-bench-drain-'));
  await chmod(dir, 0o755);
  const started: NodeProcess[] = [];
  const created: string[] = [];
  try {
    return await drain(name, { ...options, databaseUrl: options.databaseUrl }, dbs, dir, started, created, tag);
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    const tails = started.map((p) => `--- node pid ${p.pid} (${p.alive() ? 'running' : 'exited'}) ---\n${p.logTail().split('\n').slice(-30).join('\n')}`).join('\n');
    note(`[sync-drain] failed: ${(err as Error).message}${cause ? ` (${cause})` : ''}\n${tails}`);
    return { name, config: 'secondary + top-level', status: 'failed', note: `${(err as Error).message}${cause ? ` (${cause})` : ''}` };
  } finally {
    for (const p of started.reverse()) await p.stop().catch(() => p.kill());
    for (const db of created) await admin(options.databaseUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch((err: unknown) => note(`dropping ${db} failed: ${(err as Error).message}`));
    if (options.redisUrl) await deleteKeys(options.redisUrl, `snode-bench:${tag}:`).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

async function drain(
  name: ScenarioName,
  options: DrainOptions & { databaseUrl: string },
  dbs: { top: string; node: string },
  dir: string,
  started: NodeProcess[],
  created: string[],
  tag: string,
): Promise<ScenarioResult> {
  {
    for (const db of Object.values(dbs)) {
      await admin(options.databaseUrl, `CREATE DATABASE ${db}`);
      created.push(db);
    }
    const topPort = await freePort();
    // Rate limits stay on (their cost is part of the figure) with budgets the load never reaches, as for every bench node.
    const unreachableBudgets = { RATE_LIMIT_RESOLVE_ANONYMOUS: '1000000000', RATE_LIMIT_RESOLVE_KEYED: '1000000000', RATE_LIMIT_REGISTER: '1000000000' };
    const base = { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', API_KEY_SECRET: randomBytes(24).toString('hex'), REDIS_URL: options.redisUrl ?? '', BENCH_ROUTES: '', ...unreachableBudgets };
    const topEnv = { ...base, ROLE: 'top-level', NODE_ID: 'bench-top', NODE_PREFIX: '99', PORT: String(topPort), DATABASE_URL: withDb(options.databaseUrl, dbs.top), DATA_DIR: path.join(dir, 'top'), REDIS_KEY_PREFIX: `snode-bench:${tag}:top:` };
    const batchSize = 1000;
    const nodeEnv = {
      ...base,
      NODE_ID: 'bench-node',
      NODE_PREFIX: '88.118',
      PORT: '0',
      DATABASE_URL: withDb(options.databaseUrl, dbs.node),
      DATA_DIR: path.join(dir, 'node'),
      REDIS_KEY_PREFIX: `snode-bench:${tag}:node:`,
      UPSTREAM_URLS: `http://127.0.0.1:${topPort}`,
      SYNC_BATCH_SIZE: String(batchSize),
      SYNC_RETRY_BASE_MS: '50',
      SYNC_RETRY_MAX_MS: '200',
      HEARTBEAT_INTERVAL_MS: '1000',
    };
    const cli = async (args: string[], env: NodeJS.ProcessEnv) => (await run(process.execPath, [NODE_MAIN, ...args], { env: { ...env, LOG_LEVEL: 'warn' }, maxBuffer: 64 * 1024 * 1024 })).stdout;

    // The node's key, registered on the top-level node's database (the top-level node is not running).
    const pub = (await cli(['federation', 'public-key'], nodeEnv)).replace(/^#.*\n/, '');
    await writeFile(path.join(dir, 'node.pub.pem'), pub);
    await cli(['admin', 'register-node', '--id', 'bench-node', '--prefix', '88.118', '--public-key', path.join(dir, 'node.pub.pem')], topEnv);

    note('[sync-drain] starting the secondary node (its top-level node is not running yet)');
    const node = await NodeProcess.start({ env: nodeEnv, dataDir: nodeEnv.DATA_DIR });
    started.push(node);
    const adminKey = (await readFile(path.join(nodeEnv.DATA_DIR, 'admin.key'), 'utf8')).trim();
    const ent = await json(`${node.url}/api/admin/enterprises`, 'POST', adminKey, { name: 'sync-drain bench', uscc: '91320115MA1WXY7Q4L' });
    await json(`${node.url}/api/admin/enterprises/${String(ent.body.id)}/prefixes`, 'POST', adminKey, { prefix: '88.118.8' });
    const key = String((await json(`${node.url}/api/admin/keys`, 'POST', adminKey, { role: 'enterprise', enterpriseId: ent.body.id })).body.key);

    // The fastest registration route: POST /api/handles/batch, 1,000 creates a request.
    const perRequest = 1000;
    const requests = Math.ceil(options.changes / perRequest);
    const connections = Math.min(options.connections, 4, requests); // autocannon refuses more connections than requests
    note(`[sync-drain] registering ${options.changes.toLocaleString('en')} identifiers with POST /api/handles/batch (${perRequest} a request), ${connections} connections`);
    const value = [{ index: 1, type: 'URL', data: { format: 'string', value: 'https://example.com/drain' } }];
    const t0 = Date.now();
    const load = await runLoad({
      baseUrl: node.url,
      connections,
      amount: requests,
      signal: options.signal,
      plan: {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        size: requests,
        at: (i) => {
          const from = i * perRequest;
          const count = Math.min(perRequest, options.changes - from);
          const operations = Array.from({ length: count }, (_, k) => ({ op: 'create', handle: `88.118.8/DRAIN-${from + k}`, values: value }));
          return { path: '/api/handles/batch', body: JSON.stringify({ mode: 'atomic', operations }) };
        },
      },
    });
    const registerSeconds = (Date.now() - t0) / 1000;
    const okRequests = load.statuses['200'] ?? 0;
    const ok = Math.min(options.changes, okRequests * perRequest);
    const errors = load.connErrors + (load.requests - okRequests);
    const status = async () => (await json(`${node.url}/api/federation/status`, 'GET', adminKey)).body as { outbox: { backlog: number } };
    const backlog = (await status()).outbox.backlog;
    if (backlog !== ok) throw new Error(`expected a backlog of ${ok} changes, found ${backlog}`);

    note('[sync-drain] starting the top-level node; timing the drain');
    const top = await NodeProcess.start({ env: topEnv, dataDir: topEnv.DATA_DIR });
    started.push(top);
    const t1 = Date.now();
    for (;;) {
      if (options.signal.aborted) throw new Error('aborted');
      if ((await status()).outbox.backlog === 0) break;
      if (Date.now() - t1 > 600_000) throw new Error('the backlog did not drain within 10 minutes');
      await new Promise((r) => setTimeout(r, 25));
    }
    const drainSeconds = (Date.now() - t1) / 1000;
    const verify = JSON.parse(await cli(['federation', 'verify'], nodeEnv).catch((err: { stdout?: string }) => err.stdout ?? '{}')) as { inSync: boolean; drift: boolean };

    const registerPerSec = Math.round(ok / registerSeconds);
    const drainPerSec = Math.round(ok / drainSeconds);
    const drain: DrainDetail = { changes: ok, route: 'POST /api/handles/batch (1,000 a request)', registerSeconds, registerPerSec, drainSeconds, drainPerSec, ratio: Math.round((drainPerSec / registerPerSec) * 100) / 100, batchSize, verify };
    note(`[sync-drain] registered ${ok} in ${registerSeconds.toFixed(1)} s (${registerPerSec}/s); drained in ${drainSeconds.toFixed(1)} s (${drainPerSec}/s); drain/register ${drain.ratio}; verify ${verify.inSync ? 'in sync' : 'DRIFT'}`);
    return {
      name,
      config: 'secondary + top-level',
      status: 'ok',
      requests: load.requests,
      errors: errors + (verify.inSync ? 0 : 1),
      statuses: load.statuses,
      latencyMs: load.latency,
      drain,
    };
  }
}
