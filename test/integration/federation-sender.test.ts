/**
 * The sender across processes sharing one database: exactly one sends (advisory lock), the other
 * takes over when it stops, and every change reaches the escrow copy once, in sequence.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { registerNode } from '../../src/federation/cli.js';
import { generateNodeKey } from '../../src/federation/signing.js';
import { createLogger } from '../../src/infra/logger.js';
import { runMigrations } from '../../src/infra/migrations.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let topDb: TestDatabase;
let nodeDb: TestDatabase;
let dir: string;
let top: TestNode;
const nodes: TestNode[] = [];
let topPool: pg.Pool;

async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const statusOf = async (n: TestNode, key: string) => (await call(n.url, 'GET', '/api/federation/status', { key })).body;

beforeAll(async () => {
  [topDb, nodeDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'snode-sender-'));
  const key = generateNodeKey('ed25519');
  await writeFile(path.join(dir, 'node.pem'), key.privatePem, { mode: 0o600 });
  await writeFile(path.join(dir, 'node.pub.pem'), key.publicPem);
  topPool = new pg.Pool({ connectionString: topDb.url, max: 2 });
  await runMigrations(topPool);
  const config = loadConfig({ DATABASE_URL: topDb.url });
  await registerNode(topPool, config, createLogger('silent'), { id: 'node-s', prefix: '88.118', publicKey: path.join(dir, 'node.pub.pem') });
  top = await startTestNode({ databaseUrl: topDb.url, redis: false, env: { ROLE: 'top-level', NODE_PREFIX: '99', NODE_ID: 'top' } });
  const env = { NODE_ID: 'node-s', UPSTREAM_URLS: top.url, FEDERATION_KEY_FILE: path.join(dir, 'node.pem'), SYNC_BATCH_WAIT_MS: '20', SYNC_BATCH_SIZE: '64', SYNC_RETRY_BASE_MS: '50', SYNC_RETRY_MAX_MS: '500', HEARTBEAT_INTERVAL_MS: '500' };
  nodes.push(await startTestNode({ databaseUrl: nodeDb.url, redis: true, env }));
  nodes.push(await startTestNode({ databaseUrl: nodeDb.url, redis: true, env }));
});

afterAll(async () => {
  for (const n of nodes) await n.close().catch(() => undefined);
  await top?.close();
  await topPool?.end();
  await Promise.all([topDb?.drop(), nodeDb?.drop()]);
  await rm(dir, { recursive: true, force: true });
});

describe('outbox sender', () => {
  it('runs in exactly one process per database, hands over when that process stops, and delivers every change once', async () => {
    const adminKey = nodes[0]!.adminKey;
    const leaders = async () => Promise.all(nodes.map(async (n) => (await statusOf(n, adminKey)).sender.leader as boolean));
    await until('one sender', async () => ((await leaders()).filter(Boolean).length === 1 ? true : undefined));
    // And it stays one: the other keeps standing by.
    for (let i = 0; i < 5; i += 1) {
      expect((await leaders()).filter(Boolean)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 100));
    }

    const { key } = await onboard(nodes[0]!.url, adminKey, makeUscc(5001), '88.118.8');
    const write = async (from: number, to: number) => {
      for (let i = from; i < to; i += 1) {
        const n = nodes[i % nodes.length]!;
        const r = await call(n.url, 'PUT', `/api/handles/88.118.8/S-${i}`, { key, body: { values: [url(`https://s.example/${i}`)] } });
        expect(r.status, r.text).toBe(200);
      }
      // One change more on an existing record, and a delete.
      expect((await call(nodes[0]!.url, 'PUT', `/api/handles/88.118.8/S-${from}`, { key, body: { values: [url('https://s.example/changed')] } })).status).toBe(200);
      expect((await call(nodes[nodes.length - 1]!.url, 'DELETE', `/api/handles/88.118.8/S-${from + 1}`, { key })).status).toBe(200);
    };
    const escrow = async () => {
      const { rows } = await topPool.query<{ n: string; acked: string }>(
        `SELECT (SELECT count(*) FROM federation_escrow WHERE node_id = 'node-s') AS n, (SELECT acked_seq FROM federation_nodes WHERE node_id = 'node-s') AS acked`,
      );
      return { records: Number(rows[0]!.n), acked: Number(rows[0]!.acked) };
    };

    await write(0, 200);
    await until('the backlog drained', async () => ((await statusOf(nodes[0]!, adminKey)).outbox.backlog === 0 ? true : undefined));
    // 200 creates + 1 update + 1 delete: 202 events, each stored once; 199 records remain.
    expect(await escrow()).toEqual({ records: 199, acked: 202 });
    expect((await topPool.query(`SELECT handle_values::text AS v FROM federation_escrow WHERE suffix = 'S-0'`)).rows[0].v).toContain('changed');

    const leaderIndex = (await leaders()).indexOf(true);
    const survivor = nodes[1 - leaderIndex]!;
    await nodes[leaderIndex]!.close();
    nodes.splice(leaderIndex, 1);
    await until('the other process to take over', async () => ((await statusOf(survivor, adminKey)).sender.leader ? true : undefined));
    await write(200, 250);
    await until('the backlog drained again', async () => ((await statusOf(survivor, adminKey)).outbox.backlog === 0 ? true : undefined));
    expect(await escrow()).toEqual({ records: 199 + 49, acked: 202 + 52 });
    const state = (await statusOf(survivor, adminKey)).outbox;
    expect(state).toMatchObject({ ackedSeq: 254, nextSeq: 255, backlog: 0 });
  });
});
