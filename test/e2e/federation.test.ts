/**
 * Federation across real processes on loopback: a top-level node (ROLE=top-level) and secondary
 * nodes A (Ed25519) and B (SM2), each with its own database, talking over real HTTP.
 */
import { createServer } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateNodeKey, loadNodeKey, signRequest, type NodeKey } from '../../src/federation/signing.js';
import { decode, encode, Op, PROTOBUF_TYPE, type SyncBatch } from '../../src/federation/wire.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix } from '../helpers/node.js';
import { runCli, startProcess, type NodeProcess } from '../helpers/process.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { makeUscc } from '../helpers/uscc.js';

const SECRET = 'test-secret-test-secret-test-secret-0123';

interface Site {
  name: string;
  db: TestDatabase;
  dir: string;
  redisPrefix: string;
  env: Record<string, string>;
  proc?: NodeProcess;
  adminKey?: string;
}

const sites: Site[] = [];
const started: NodeProcess[] = [];
let top: Site;
let a: Site;
let b: Site;
let topPort: number;
let top2Port: number;
let enterpriseKey: string;

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

async function site(name: string, env: Record<string, string>): Promise<Site> {
  const s: Site = { name, db: await createTestDatabase(), dir: await mkdtemp(path.join(os.tmpdir(), `snode-fed-${name}-`)), redisPrefix: newRedisPrefix(), env: {} };
  s.env = {
    DATABASE_URL: s.db.url,
    DATA_DIR: s.dir,
    API_KEY_SECRET: SECRET,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: s.redisPrefix,
    NODE_ID: name,
    LOG_LEVEL: 'info',
    ...env,
  };
  sites.push(s);
  return s;
}

async function start(s: Site, extra: Record<string, string> = {}): Promise<NodeProcess> {
  const proc = await startProcess({ ...s.env, ...extra }, [process.execPath, 'dist/main.js', 'serve'], undefined, 120_000);
  started.push(proc);
  s.proc = proc;
  s.adminKey ??= (await readFile(path.join(s.dir, 'admin.key'), 'utf8')).trim();
  return proc;
}

/** Polls `check` until it returns a value (not undefined), or fails after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

async function status(s: Site) {
  const r = await call(s.proc!.url, 'GET', '/api/federation/status', { key: s.adminKey });
  expect(r.status, r.text).toBe(200);
  return r.body;
}

/** Waits until the node has nothing unsent and returns its status. */
const drained = (s: Site, ms?: number) =>
  until(`${s.name} to drain its outbox`, async () => {
    const st = await status(s);
    return st.outbox.backlog === 0 && st.sender.leader ? st : undefined;
  }, ms);

async function topQuery<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  return nodeQuery<T>(top, sql, params);
}

async function nodeQuery<T extends pg.QueryResultRow>(node: { db: { url: string } }, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: node.db.url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

const escrowFigures = () =>
  topQuery<{ n: string; digest: string | null }>(
    `SELECT count(*) AS n, md5(string_agg(prefix || '/' || suffix || ':' || version || ':' || handle_values::text, ',' ORDER BY prefix, suffix)) AS digest
     FROM federation_escrow WHERE node_id = 'node-a'`,
  ).then((rows) => rows[0]!);

beforeAll(async () => {
  topPort = await freePort();
  top2Port = await freePort();
  top = await site('top', { ROLE: 'top-level', NODE_PREFIX: '99', PORT: String(topPort), NODE_DOWN_AFTER_MS: '3000', FEDERATION_TIMESTAMP_WINDOW_MS: '60000' });
  const upstream = `http://127.0.0.1:${topPort},http://127.0.0.1:${top2Port}`;
  const secondary = { UPSTREAM_URLS: upstream, HEARTBEAT_INTERVAL_MS: '500', SYNC_BATCH_WAIT_MS: '50', SYNC_RETRY_BASE_MS: '100', SYNC_RETRY_MAX_MS: '1000', UPSTREAM_FAILOVER_AFTER: '2', UPSTREAM_PRIMARY_RETRY_MS: '1000', UPSTREAM_CONNECT_TIMEOUT_MS: '2000', PORT: '0' };
  a = await site('node-a', { ...secondary, NODE_PREFIX: '88.118' });
  b = await site('node-b', { ...secondary, NODE_PREFIX: '88.119', FEDERATION_KEY_ALGORITHM: 'sm2' });

  // Each secondary prints its public key; the top-level operator registers it.
  for (const s of [a, b]) {
    const printed = await runCli(['federation', 'public-key'], s.env);
    expect(printed.code, printed.stderr).toBe(0);
    const file = path.join(s.dir, 'public.pem');
    await writeFile(file, printed.stdout.replace(/^#.*\n/, ''));
    const registered = await runCli(['admin', 'register-node', '--id', s.name, '--prefix', s.env.NODE_PREFIX!, '--public-key', file], top.env);
    expect(registered.code, registered.stderr).toBe(0);
    expect(JSON.parse(registered.stdout)).toMatchObject({ nodeId: s.name, algorithm: s === b ? 'sm2' : 'ed25519' });
  }
  // Registering again with nothing new is no event; a key rotation is (here to another key and
  // back); a node's prefix is not moved, nor a URL taken that is not one.
  const aKey = path.join(a.dir, 'public.pem');
  const again = await runCli(['admin', 'register-node', '--id', 'node-a', '--prefix', '88.118', '--public-key', aKey], top.env);
  expect(again.code, again.stderr).toBe(0);
  for (const file of [path.join(b.dir, 'public.pem'), aKey]) {
    const rotated = await runCli(['admin', 'register-node', '--id', 'node-a', '--prefix', '88.118', '--public-key', file], top.env);
    expect(rotated.code, rotated.stderr).toBe(0);
  }
  const moved = await runCli(['admin', 'register-node', '--id', 'node-a', '--prefix', '77.5', '--public-key', aKey], top.env);
  expect(moved.code).toBe(1);
  expect(moved.stderr).toContain('NODE_PREFIX_CHANGE');
  const badUrl = await runCli(['admin', 'register-node', '--id', 'node-c', '--prefix', '77.6', '--public-key', aKey, '--url', 'not a url'], top.env);
  expect(badUrl.code).toBe(1);
  expect(badUrl.stderr).toContain('INVALID_URL');
  expect(await topQuery("SELECT node_id FROM federation_nodes WHERE node_id = 'node-c' OR node_prefix = '77.5'")).toEqual([]);
  expect(await topQuery("SELECT prefix FROM federation_prefixes WHERE node_id = 'node-a' ORDER BY prefix")).toEqual([{ prefix: '88.118' }]);
  expect(await topQuery("SELECT action, target, actor_role FROM audit_log WHERE action LIKE 'node.%' ORDER BY id")).toEqual([
    { action: 'node.register', target: 'node-a', actor_role: 'system' },
    { action: 'node.register', target: 'node-b', actor_role: 'system' },
    { action: 'node.rotate-key', target: 'node-a', actor_role: 'system' },
    { action: 'node.rotate-key', target: 'node-a', actor_role: 'system' },
  ]);
  await start(top);
  await Promise.all([start(a), start(b)]);
  enterpriseKey = (await onboard(a.proc!.url, a.adminKey!, makeUscc(4001), '88.118.8')).key;
}, 300_000);

afterAll(async () => {
  for (const p of started) {
    if (p.child.exitCode === null) await Promise.race([p.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    p.kill();
  }
  for (const s of sites) {
    await s.db.drop().catch(() => undefined);
    await clearRedisPrefix(s.redisPrefix).catch(() => undefined);
    await rm(s.dir, { recursive: true, force: true });
  }
}, 120_000);

function failed(s: Site, err: unknown): never {
  throw new Error(`${(err as Error).message}\n--- ${s.name} log tail ---\n${s.proc?.output().slice(-4000)}`);
}

describe('federation', () => {
  it('resolves an identifier registered on A through B, and monitors both nodes', async () => {
    const put = await call(a.proc!.url, 'PUT', '/api/handles/88.118.8/FED-1', { key: enterpriseKey, body: { values: [url('https://a.example/1')] } });
    expect(put.status, put.text).toBe(200);
    const viaB = await call(b.proc!.url, 'GET', '/api/handles/88.118.8/FED-1');
    expect(viaB.status, viaB.text).toBe(200);
    expect(viaB.body.values[0].data.value).toBe('https://a.example/1');
    expect(viaB.headers.get('x-snode-takeover')).toBeNull();

    // Not homed anywhere: not found, through the top-level node's lookup.
    expect((await call(b.proc!.url, 'GET', '/api/handles/77.1/NOPE')).status).toBe(404);
    // A request that has already taken the most hops is not forwarded again.
    const loop = await call(top.proc!.url, 'GET', '/api/handles/88.118.8/LOOP-1', { headers: { 'x-snode-hops': '3' } });
    expect(loop.status, loop.text).toBe(508);
    expect(loop.body).toMatchObject({ code: 'LOOP_DETECTED', handle: '88.118.8/LOOP-1' });

    const nodes = await until('both nodes up with figures', async () => {
      const r = await call(top.proc!.url, 'GET', '/federation/v1/nodes', { key: top.adminKey });
      expect(r.status, r.text).toBe(200);
      const ok = r.body.nodes.length === 2 && r.body.nodes.every((n: { state: string; identifiers: number | null }) => n.state === 'up' && n.identifiers !== null);
      const nodeA = r.body.nodes.find((n: { nodeId: string }) => n.nodeId === 'node-a');
      return ok && nodeA.identifiers === 1 && nodeA.ackedSeq >= 1 ? r.body.nodes : undefined;
    }).catch((err) => failed(top, err));
    expect(nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['node-a', 'node-b']);
    expect((await call(top.proc!.url, 'GET', '/federation/v1/nodes')).status).toBe(401);

    const st = await drained(a);
    expect(st.upstream.currentIndex).toBe(0);
    expect(st.outbox.ackedSeq).toBeGreaterThanOrEqual(1);
  });

  it('rejects a tampered body, a wrong key, an unknown node, a stale timestamp and a replayed batch, leaving the escrow unchanged', async () => {
    await drained(a);
    const before = await escrowFigures();
    const aKey = loadNodeKey(await readFile(path.join(a.dir, 'federation-key.pem'), 'utf8'));
    const wrongKey = loadNodeKey(generateNodeKey('ed25519').privatePem);
    const acked = Number((await topQuery<{ acked_seq: string }>(`SELECT acked_seq FROM federation_nodes WHERE node_id = 'node-a'`))[0]!.acked_seq);
    const evil: SyncBatch = {
      nodeId: 'node-a',
      firstSeq: acked + 1,
      lastSeq: acked + 1,
      events: [{ seq: acked + 1, op: Op.UPSERT, prefix: '88.118.8', suffix: 'EVIL', version: 1, valuesJson: '[]', at: new Date().toISOString(), snapshotStart: 0 }],
    };
    const evilBody = encode('SyncBatch', evil);
    const send = (headers: Record<string, string>, body: Buffer) =>
      fetch(`${top.proc!.url}/federation/v1/sync`, { method: 'POST', headers: { ...headers, 'content-type': PROTOBUF_TYPE }, body });
    const code = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code });
    const signed = (key: NodeKey, nodeId: string, body: Buffer, at?: number) => signRequest(key, nodeId, 'POST', '/federation/v1/sync', body, at) as unknown as Record<string, string>;

    const harmless = encode('SyncBatch', { ...evil, events: [{ ...evil.events[0]!, suffix: 'HARMLESS' }] });
    expect(await code(await send(signed(aKey, 'node-a', harmless), evilBody))).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    expect(await code(await send(signed(wrongKey, 'node-a', evilBody), evilBody))).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    expect(await code(await send(signed(aKey, 'node-x', evilBody), evilBody))).toEqual({ status: 401, code: 'UNKNOWN_NODE' });
    expect(await code(await send(signed(aKey, 'node-a', evilBody, Date.now() - 10 * 60_000), evilBody))).toEqual({ status: 401, code: 'STALE_TIMESTAMP' });
    expect(await code(await send({}, evilBody))).toEqual({ status: 401, code: 'SIGNATURE_MISSING' });

    // A batch the top-level node already holds: stored once, so sending it again stores nothing...
    const old: SyncBatch = { nodeId: 'node-a', firstSeq: 1, lastSeq: 1, events: [{ seq: 1, op: Op.UPSERT, prefix: '88.118.8', suffix: 'FED-1', version: 99, valuesJson: '[]', at: new Date().toISOString(), snapshotStart: 0 }] };
    const oldBody = encode('SyncBatch', old);
    const headers = signed(aKey, 'node-a', oldBody);
    const again = await send(headers, oldBody);
    expect(again.status).toBe(200);
    expect(decode('SyncAck', new Uint8Array(await again.arrayBuffer()))).toEqual({ ackedSeq: acked, stored: 0 });
    // ...and the very same signed request a second time is a replay.
    expect(await code(await send(headers, oldBody))).toEqual({ status: 409, code: 'REPLAYED_REQUEST' });

    expect(await escrowFigures()).toEqual(before);
    expect((await topQuery(`SELECT 1 FROM federation_escrow WHERE suffix = 'EVIL'`)).length).toBe(0);
  });

  it('keeps changes made while the top-level node is down and delivers each exactly once', async () => {
    await top.proc!.stop();
    // A prefix B has never looked up cannot be found while the top-level node is away: 504.
    const unreachable = await call(b.proc!.url, 'GET', '/api/handles/88.118.9/X');
    expect(unreachable.status, unreachable.text).toBe(504);
    expect(unreachable.body).toMatchObject({ code: 'OWNER_UNREACHABLE', handle: '88.118.9/X' });
    // In a batch the unreachable owner fails its own item only.
    const batch = await call(b.proc!.url, 'POST', '/api/resolve', { body: { handles: ['88.118.9/X', '88.119.1/NONE', 'bad'] } });
    expect(batch.status, batch.text).toBe(200);
    expect(batch.body.results.map((r: { code?: string; responseCode: number }) => [r.responseCode, r.code])).toEqual([
      [2, 'OWNER_UNREACHABLE'],
      [100, 'HANDLE_NOT_FOUND'],
      [102, 'INVALID_HANDLE'],
    ]);
    const base = a.proc!.url;
    const total = 10_000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const r = await call(base, 'PUT', `/api/handles/88.118.8/OUT-${i}`, { key: enterpriseKey, body: { values: [url(`https://a.example/out/${i}`)] } });
        if (r.status !== 200) throw new Error(`PUT OUT-${i}: ${r.status} ${r.text}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const waiting = await status(a);
    expect(waiting.outbox.backlog).toBeGreaterThanOrEqual(total);

    await start(top);
    await drained(a, 180_000).catch((err) => failed(a, err));
    const figures = await escrowFigures();
    expect(Number(figures.n)).toBe(total + 1);
    const ids = await topQuery<{ n: string }>(`SELECT count(DISTINCT suffix) AS n FROM federation_escrow WHERE node_id = 'node-a' AND suffix LIKE 'OUT-%'`);
    expect(Number(ids[0]!.n)).toBe(total);

    const verified = await runCli(['federation', 'verify'], a.env);
    expect(verified.code, verified.stderr + verified.stdout).toBe(0);
    const report = JSON.parse(verified.stdout);
    expect(report).toMatchObject({ inSync: true, drift: false, backlog: 0 });
    expect(report.prefixes).toEqual([expect.objectContaining({ prefix: '88.118.8', match: true, node: expect.objectContaining({ count: total + 1 }) })]);

    // Drift (a record lost on the top-level side) is reported, and resync repairs it.
    await topQuery(`DELETE FROM federation_escrow WHERE node_id = 'node-a' AND suffix = 'OUT-7'`);
    await topQuery(`INSERT INTO federation_escrow (node_id, prefix, suffix, version, handle_values, seq) VALUES ('node-a', '88.118.8', 'STRAY', 1, '[]', 1)`);
    const drifted = await runCli(['federation', 'verify'], a.env);
    expect(drifted.code).toBe(1);
    expect(JSON.parse(drifted.stdout)).toMatchObject({ drift: true, prefixes: [expect.objectContaining({ match: false })] });
    // Without UPSTREAM_URLS a resync could not ask the top-level node's position: refused, nothing queued.
    const before = await nodeQuery(a, 'SELECT next_seq FROM federation_sender');
    const blind = await runCli(['federation', 'resync'], { ...a.env, UPSTREAM_URLS: '' });
    expect(blind.code).toBe(1);
    expect(blind.stderr).toMatch(/NO_UPSTREAM|UPSTREAM_URLS is empty/);
    expect(await nodeQuery(a, 'SELECT next_seq FROM federation_sender')).toEqual(before);
    const resync = await runCli(['federation', 'resync'], a.env);
    expect(resync.code, resync.stderr).toBe(0);
    expect(JSON.parse(resync.stdout)).toMatchObject({ records: total + 1 });
    await drained(a, 180_000);
    const repaired = await runCli(['federation', 'verify'], a.env);
    expect(repaired.code, repaired.stdout).toBe(0);
    expect((await topQuery(`SELECT 1 FROM federation_escrow WHERE suffix = 'STRAY'`)).length).toBe(0);
  }, 600_000);

  it('fails over to the second upstream URL and returns to the first', async () => {
    // The second endpoint serves the same top-level store (its own process, same database).
    await top.proc!.stop();
    const top2 = await startProcess({ ...top.env, PORT: String(top2Port), NODE_ID: 'top-dr' }, [process.execPath, 'dist/main.js', 'serve'], undefined, 120_000);
    started.push(top2);
    try {
      const put = await call(a.proc!.url, 'PUT', '/api/handles/88.118.8/FAILOVER-1', { key: enterpriseKey, body: { values: [url('https://a.example/f1')] } });
      expect(put.status).toBe(200);
      await until('A on the second endpoint with nothing unsent', async () => {
        const st = await status(a);
        return st.upstream.currentIndex === 1 && st.outbox.backlog === 0 ? st : undefined;
      }).catch((err) => failed(a, err));
      expect((await topQuery(`SELECT 1 FROM federation_escrow WHERE suffix = 'FAILOVER-1'`)).length).toBe(1);

      await start(top);
      const put2 = await call(a.proc!.url, 'PUT', '/api/handles/88.118.8/FAILOVER-2', { key: enterpriseKey, body: { values: [url('https://a.example/f2')] } });
      expect(put2.status).toBe(200);
      await until('A back on the first endpoint with nothing unsent', async () => {
        const st = await status(a);
        return st.upstream.currentIndex === 0 && st.outbox.backlog === 0 ? st : undefined;
      }).catch((err) => failed(a, err));
      expect((await topQuery(`SELECT 1 FROM federation_escrow WHERE suffix = 'FAILOVER-2'`)).length).toBe(1);
    } finally {
      await top2.stop();
    }
  }, 300_000);

  it('answers for A from the escrow copy while A is down, through the top-level node and through B, until A is back', async () => {
    await drained(a);
    await a.proc!.stop();
    await until('the top-level node to mark A down', async () => {
      const r = await call(top.proc!.url, 'GET', '/federation/v1/nodes', { key: top.adminKey });
      return r.body.nodes.find((n: { nodeId: string; state: string }) => n.nodeId === 'node-a' && n.state === 'down');
    }).catch((err) => failed(top, err));

    const viaTop = await call(top.proc!.url, 'GET', '/api/handles/88.118.8/OUT-42');
    expect(viaTop.status, viaTop.text).toBe(200);
    expect(viaTop.headers.get('x-snode-takeover')).toBe('node-a');
    expect(viaTop.body.values[0].data.value).toBe('https://a.example/out/42');
    const viaB = await call(b.proc!.url, 'GET', '/api/handles/88.118.8/OUT-43');
    expect(viaB.status, viaB.text).toBe(200);
    expect(viaB.body.values[0].data.value).toBe('https://a.example/out/43');
    expect(viaB.headers.get('x-snode-takeover')).toBe('node-a');
    expect((await call(top.proc!.url, 'GET', '/api/handles/88.118.8/NEVER-REGISTERED')).status).toBe(404);

    await start(a);
    await until('A up again and answering for itself', async () => {
      const r = await call(top.proc!.url, 'GET', '/api/handles/88.118.8/OUT-44');
      return r.status === 200 && r.headers.get('x-snode-takeover') === null ? r : undefined;
    }).catch((err) => failed(top, err));
  }, 300_000);

  it('realigns the stream after a restore: changes the top-level node would skip as already applied reach it after a resync with the node stopped', async () => {
    await drained(a, 120_000);
    await a.proc!.stop();
    // A restore of an older backup: this node's positions go back 50, the top-level node's do not.
    const aSql = new pg.Client({ connectionString: a.db.url });
    await aSql.connect();
    try {
      await aSql.query('UPDATE federation_sender SET acked_seq = acked_seq - 50, next_seq = acked_seq - 49');
    } finally {
      await aSql.end();
    }
    await start(a);
    for (let i = 0; i < 10; i += 1) {
      const r = await call(a.proc!.url, 'PUT', `/api/handles/88.118.8/AFTER-RESTORE-${i}`, { key: enterpriseKey, body: { values: [url(`https://a.example/after/${i}`)] } });
      expect([200, 201], r.text).toContain(r.status);
    }
    await drained(a, 60_000);
    // Numbered again with positions the top-level node has seen, they were skipped: drift.
    const skipped = await runCli(['federation', 'verify'], a.env);
    expect(skipped.code).toBe(1);
    expect((await topQuery(`SELECT 1 FROM federation_escrow WHERE node_id = 'node-a' AND suffix LIKE 'AFTER-RESTORE-%'`)).length).toBe(0);
    // A resync cannot realign with the sender running, and says what to do.
    const refused = await runCli(['federation', 'resync'], a.env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toMatch(/SENDER_RUNNING|Stop the node/);
    await a.proc!.stop();
    const resync = await runCli(['federation', 'resync'], a.env);
    expect(resync.code, resync.stderr).toBe(0);
    const queued = JSON.parse(resync.stdout);
    // The node had acknowledged its 10 changes (skipped there): 40 behind the top-level node.
    expect(queued.realigned).toEqual({ from: expect.any(Number), to: queued.realigned.from + 40 });
    expect(queued.firstSeq).toBe(queued.realigned.to + 1);
    await start(a);
    await drained(a, 120_000);
    const verified = await runCli(['federation', 'verify'], a.env);
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ inSync: true, drift: false });
    expect((await topQuery(`SELECT 1 FROM federation_escrow WHERE node_id = 'node-a' AND suffix LIKE 'AFTER-RESTORE-%'`)).length).toBe(10);
  }, 300_000);
});
