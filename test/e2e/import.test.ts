/**
 * Streaming imports against real node processes on real Postgres and Redis: malformed lines and
 * columns, a node killed mid-import and restarted (every line applied exactly once), lines that
 * break their metadata template (command line), and the command line importing 1,000,000 lines.
 * The node federates with a top-level node that is down (UPSTREAM_URLS names a port where nothing
 * listens), so every change it makes stays in its sync outbox, where the tests count it next to
 * the audit log and the statistics: each item of a batch and each line of an import is seen
 * exactly once by all three.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { call, onboard } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix } from '../helpers/node.js';
import { runCli, startProcess, type NodeProcess } from '../helpers/process.js';
import { freePort } from '../helpers/ports.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let dataDir: string;
let closedPort: number;
let sql: pg.Pool;
let node: NodeProcess | undefined;
let adminKey: string;
let key: string;
const redisPrefix = newRedisPrefix();

function env(): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: redisPrefix,
    DATA_DIR: dataDir,
    API_KEY_SECRET: 'test-secret-test-secret-test-secret-0123',
    PORT: '0',
    NODE_PREFIX: '88.118',
    NODE_ID: 'node-import',
    // The top-level node is down for the whole file: changes wait in the outbox.
    UPSTREAM_URLS: `http://127.0.0.1:${closedPort}`,
    SYNC_RETRY_MAX_MS: '60000',
  };
}

const start = () => startProcess(env(), ['node', 'dist/main.js', 'serve']);

beforeAll(async () => {
  closedPort = await freePort();
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'snode-import-'));
  node = await start();
  adminKey = (await readFile(path.join(dataDir, 'admin.key'), 'utf8')).trim();
  ({ key } = await onboard(node.url, adminKey, makeUscc(81), '88.118.81'));
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
}, 120_000);

afterAll(async () => {
  node?.kill();
  await sql?.end();
  await clearRedisPrefix(redisPrefix);
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

async function upload(query: string, contentType: string, body: string | Buffer) {
  return call(node!.url, 'POST', `/api/imports?${query}`, { key, raw: body, contentType });
}

/** Polls the job until it is done or failed (bounded, no fixed sleeps beyond the poll step). */
async function finished(id: string, limitMs = 300_000, as = key): Promise<Record<string, unknown>> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const r = await call(node!.url, 'GET', `/api/imports/${id}`, { key: as });
    if (r.status !== 200) throw new Error(`import ${id}: ${r.status} ${r.text}`);
    if (r.body?.state === 'done' || r.body?.state === 'failed') return r.body;
    if (Date.now() > deadline) throw new Error(`import ${id} still ${r.body?.state} after ${limitMs} ms: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls the job until at least `lines` of its `count` lines are committed, and not all of them. */
async function midway(id: string, lines: number, count: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const r = await call(node!.url, 'GET', `/api/imports/${id}`, { key });
    if (r.body.linesRead >= lines && r.body.linesRead < count) return;
    if (r.body.state === 'done') throw new Error('the import finished before the node could be stopped; make the file larger');
    if (Date.now() > deadline) throw new Error(`import did not progress: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const value = (n: number) => `{"suffix":"L-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/${n}"}}]}`;

async function writeLines(file: string, count: number, line: (n: number) => string): Promise<void> {
  const out = createWriteStream(file);
  for (let n = 0; n < count; n += 1) {
    if (!out.write(`${line(n)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/**
 * How many times each sink saw the handles matching `like`: audit entries, outbox events and
 * statistics deltas, with the number of distinct handles among the first two.
 */
async function sinkCounts(prefix: string, like: string): Promise<{ audit: number; auditHandles: number; outbox: number; outboxHandles: number }> {
  const audit = (await sql.query("SELECT count(*)::int AS n, count(DISTINCT target)::int AS d FROM audit_log WHERE action LIKE 'identifier.%' AND target LIKE $1", [`${prefix}/${like}`])).rows[0];
  const outbox = (await sql.query("SELECT count(*)::int AS n, count(DISTINCT suffix)::int AS d FROM federation_outbox WHERE prefix = $1 AND suffix LIKE $2 AND op <> 'e'", [prefix, like])).rows[0];
  return { audit: audit.n, auditHandles: audit.d, outbox: outbox.n, outboxHandles: outbox.d };
}

/**
 * Creates counted for a prefix: rollups plus deltas not folded yet, in ONE statement. Read in two,
 * a fold committing between them counted its deltas twice (seen in CI: a count 1,052 too high).
 */
const created = async (prefix: string) =>
  Number(
    (
      await sql.query(
        `SELECT coalesce(sum(c), 0) AS c FROM (
           SELECT creates AS c FROM stats_registration_deltas WHERE prefix = $1
           UNION ALL SELECT creates FROM stats_registrations WHERE prefix = $1 AND grain = 't') s`,
        [prefix],
      )
    ).rows[0].c,
  );

describe('imports', () => {
  it('imports NDJSON and CSV, listing every rejected line with its reason', async () => {
    const ndjson = [value(1), 'not json', '', '{"suffix":"N-2","values":[]}', '{"suffix":"N-3","values":[{"index":1,"type":"URL","data":{"format":"string","value":"x"}}],"extra":1}', '{"handle":"88.118.99/N-4","values":[{"index":1,"type":"URL","data":{"format":"string","value":"x"}}]}', value(5)].join('\n');
    const a = await upload('prefix=88.118.81', 'application/x-ndjson', ndjson);
    expect(a.status).toBe(202);
    expect(a.headers.get('location')).toBe(`/api/imports/${a.body.id}`);
    const done = await finished(a.body.id);
    expect(done).toMatchObject({ state: 'done', linesRead: 7, written: 2, rejected: 4 });
    const rejected = await call(node!.url, 'GET', `/api/imports/${a.body.id}/rejected`, { key });
    expect(rejected.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = rejected.text.replace(/^\uFEFF/, '').trim().split('\r\n');
    expect(lines[0]).toBe('line,code,reason,text');
    expect(lines.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['2,MALFORMED_LINE', '4,INVALID_ITEM', '5,MALFORMED_LINE', '6,PREFIX_MISMATCH']);
    expect((await call(node!.url, 'GET', '/api/handles/88.118.81/L-5')).body.values[0].data.value).toBe('https://example.com/5');

    const csv = 'suffix,URL,2001:product.name\nC-1,https://example.com/c1,"Valve, cast"\nC-2,https://example.com/c2\nC-3,,\nC-4,https://example.com/c4,Body,extra\n';
    const b = await upload('prefix=88.118.81&mode=create', 'text/csv', csv);
    const csvDone = await finished(b.body.id);
    expect(csvDone).toMatchObject({ format: 'csv', state: 'done', written: 1, rejected: 3 });
    const values = (await call(node!.url, 'GET', '/api/handles/88.118.81/C-1')).body.values;
    expect(values.find((v: { index: number }) => v.index === 2001).data.value).toBe('Valve, cast');
    const csvRejected = (await call(node!.url, 'GET', `/api/imports/${b.body.id}/rejected`, { key })).text;
    expect(csvRejected).toContain('3,WRONG_COLUMNS');
    expect(csvRejected).toContain('4,INVALID_ITEM');
    expect(csvRejected).toContain('5,WRONG_COLUMNS');
    // A header that names no suffix column fails the job, with the reason.
    const bad = await upload('prefix=88.118.81', 'text/csv', 'URL,EMAIL\nx,y\n');
    expect(await finished(bad.body.id)).toMatchObject({ state: 'failed', error: expect.stringMatching(/suffix or handle/) });
    // Who may import, and who may see a job.
    expect((await call(node!.url, 'POST', '/api/imports?prefix=88.118.81', { raw: value(9), contentType: 'application/x-ndjson' })).status).toBe(401);
    expect((await upload('prefix=88.118.82', 'application/x-ndjson', value(9))).status).toBe(403);
    const { key: otherKey } = await onboard(node!.url, adminKey, makeUscc(82), '88.118.82', 'Other');
    expect((await call(node!.url, 'GET', `/api/imports/${a.body.id}`, { key: otherKey })).status).toBe(404);
    expect((await upload('prefix=88.118.81', 'application/json', '{}')).status).toBe(415);
  }, 120_000);

  it('imports under a prefix given in lower case, rejects a line with two stray quotes once, and stops at an unreadable CSV record after writing what came before', async () => {
    const { key: lettersKey, enterpriseId: lettersId } = await onboard(node!.url, adminKey, makeUscc(83), '88.118.AB', 'Letters');
    const as = (query: string, body: string) => call(node!.url, 'POST', `/api/imports?${query}`, { key: lettersKey, raw: body, contentType: 'text/csv' });
    const rows = ['suffix,URL,2001:product.name'];
    for (let i = 1; i <= 2500; i += 1) rows.push(i % 997 === 0 ? `Q-${i},https://example.com/q${i},12" x 4" flange` : `Q-${i},https://example.com/q${i},Valve`);
    const a = await as('prefix=88.118.ab', `\uFEFF${rows.join('\r\n')}\r\n`);
    expect(a.status).toBe(202);
    expect(a.body.prefix).toBe('88.118.AB');
    const done = await finished(a.body.id, 60_000, lettersKey);
    expect(done).toMatchObject({ state: 'done', linesRead: 2501, written: 2498, rejected: 2 });
    const rejected = (await call(node!.url, 'GET', `/api/imports/${a.body.id}/rejected`, { key: lettersKey })).text.replace(/^\uFEFF/, '').trim().split('\r\n').slice(1);
    expect(rejected.map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['998,MALFORMED_LINE', '1995,MALFORMED_LINE']);
    expect((await call(node!.url, 'GET', '/api/handles/88.118.ab/Q-2500')).body.values[0].data.value).toBe('https://example.com/q2500');
    // A key of the same enterprise restricted to its other prefix does not see the job or its rejected lines.
    expect((await call(node!.url, 'POST', `/api/admin/enterprises/${lettersId}/prefixes`, { key: adminKey, body: { prefix: '88.118.AC' } })).status).toBe(201);
    const narrow = await call(node!.url, 'POST', '/api/keys', { key: lettersKey, body: { prefixes: ['88.118.AC'] } });
    expect(narrow.status, narrow.text).toBe(201);
    expect((await call(node!.url, 'GET', `/api/imports/${a.body.id}`, { key: narrow.body.key })).status).toBe(404);
    expect((await call(node!.url, 'GET', `/api/imports/${a.body.id}/rejected`, { key: narrow.body.key })).status).toBe(404);

    // An unclosed quote swallows the rest of the file: the job fails, saying where, with the lines before it written.
    const broken = ['suffix,URL', ...Array.from({ length: 1500 }, (_, i) => (i === 1200 ? `R-${i},"unclosed` : `R-${i},https://example.com/r${i}`))];
    for (let i = 0; i < 1_200_000 / 40; i += 1) broken.push(`R-x${i},https://example.com/padding/${i}`);
    const b = await as('prefix=88.118.AB', `${broken.join('\n')}\n`);
    const failed = await finished(b.body.id, 60_000, lettersKey);
    expect(failed).toMatchObject({ state: 'failed', linesRead: 1201, written: 1200, rejected: 0, error: expect.stringMatching(/after line 1201 is longer than/) });
    expect((await call(node!.url, 'GET', '/api/handles/88.118.AB/R-1199')).status).toBe(200);
    expect((await call(node!.url, 'GET', '/api/handles/88.118.AB/R-1200')).status).toBe(404);
    // A failed job is never run again: its spooled upload is gone.
    await expect(stat(path.join(dataDir, 'imports', `${b.body.id}.csv`))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 120_000);

  it('leaves an upload still arriving at one node alone when another node starts on the same database', async () => {
    // The upload arrives slowly: its first half, then (after a second node has started, looked
    // for unfinished jobs and stopped) the rest.
    const target = new URL(`${node!.url}/api/imports?prefix=88.118.81&mode=create`);
    const request = http.request(target, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
    const response = new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      request.on('response', (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
      });
      request.on('error', reject);
    });
    const line = (n: number) => value(n).replace('"L-', '"SLOW-');
    request.write(`${Array.from({ length: 500 }, (_, n) => line(n)).join('\n')}\n`);
    const deadline = Date.now() + 30_000;
    let id: string | undefined;
    while (!id) {
      id = (await sql.query("SELECT id FROM imports WHERE state = 'receiving' ORDER BY created_at DESC LIMIT 1")).rows[0]?.id;
      if (!id && Date.now() > deadline) throw new Error('the upload never started');
      if (!id) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const other = await start();
    try {
      const looked = Date.now() + 30_000;
      while (!other.logs.some((l) => l.msg === 'import: unfinished jobs found at start handled')) {
        if (Date.now() > looked) throw new Error(`the second node did not look for unfinished jobs:\n${other.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Every job it found is handled: had it taken this one over (its lease is live), it would have failed it.
      await other.stop('SIGTERM');
    } finally {
      other.kill();
    }
    expect((await sql.query('SELECT state FROM imports WHERE id = $1', [id])).rows[0].state).toBe('receiving');
    request.end(`${Array.from({ length: 500 }, (_, n) => line(500 + n)).join('\n')}\n`);
    const answer = await response;
    expect(answer.status).toBe(202);
    expect(await finished(id)).toMatchObject({ state: 'done', linesRead: 1000, written: 1000, rejected: 0 });
  }, 120_000);

  it('hands every applied item of a batch to the audit log, the outbox and the statistics exactly once, a retried batch not again', async () => {
    const v = (n: string) => [{ index: 1, type: 'URL', data: { format: 'string', value: `https://example.com/b/${n}` } }];
    await call(node!.url, 'PUT', '/api/handles/88.118.81/B-U0', { key, body: { values: v('old') } });
    await call(node!.url, 'PUT', '/api/handles/88.118.81/B-D0', { key, body: { values: v('old') } });
    const before = { ...(await sinkCounts('88.118.81', 'B-%')), created: await created('88.118.81') };
    const operations = [
      ...Array.from({ length: 50 }, (_, n) => ({ op: 'create', handle: `88.118.81/B-C${n}`, values: v(`c${n}`) })),
      { op: 'update', handle: '88.118.81/B-U0', version: 1, values: v('new') },
      { op: 'delete', handle: '88.118.81/B-D0' },
      { op: 'upsert', handle: '88.118.81/B-C0', values: v('twice') }, // a handle named twice: refused
      { op: 'create', handle: '88.118.82/B-X', values: v('x') }, // not this key's prefix: refused
      { op: 'create', handle: '88.118.81/B-BAD', values: [] }, // no values: refused
    ];
    const send = () => call(node!.url, 'POST', '/api/handles/batch', { key, body: { operations }, headers: { 'idempotency-key': 'sinks-once-1' } });
    const first = await send();
    expect(first.status, first.text).toBe(200);
    expect(first.body.counts).toEqual({ created: 50, updated: 1, deleted: 1, failed: 3 });
    const again = await send();
    expect(again.headers.get('idempotency-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    const after = await sinkCounts('88.118.81', 'B-%');
    // 52 applied items: 50 creates, an update and a delete, each seen once; the refused three never.
    expect({ audit: after.audit - before.audit, outbox: after.outbox - before.outbox }).toEqual({ audit: 52, outbox: 52 });
    expect(after.auditHandles - before.auditHandles).toBe(50);
    expect((await created('88.118.81')) - before.created).toBe(50);
    const refused = await sql.query("SELECT count(*)::int AS n FROM audit_log WHERE target IN ('88.118.82/B-X', '88.118.81/B-BAD')");
    expect(refused.rows[0].n).toBe(0);
  }, 120_000);

  it('resumes an import after the node is killed mid-way, applying every line exactly once', async () => {
    const count = 100_000;
    const lines = Array.from({ length: count }, (_, n) => `{"suffix":"R-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/r/${n}"}}]}`).join('\n');
    const before = await created('88.118.81');
    const job = await upload('prefix=88.118.81&mode=create', 'application/x-ndjson', lines);
    expect(job.status).toBe(202);
    // Wait until some chunks are committed, then kill -9 (no graceful stop).
    await midway(job.body.id, 5000, count);
    node!.kill();
    await node!.exited();
    node = await start();
    const done = await finished(job.body.id);
    // create mode: a line applied twice would be rejected as existing; none is.
    expect(done).toMatchObject({ state: 'done', linesRead: count, written: count, rejected: 0 });
    const { rows } = await sql.query("SELECT count(*)::int AS n, max(version)::int AS v FROM identifiers WHERE prefix = '88.118.81' AND suffix LIKE 'R-%'");
    expect(rows[0]).toEqual({ n: count, v: 1 });
    expect((await created('88.118.81')) - before).toBe(count);
    expect(node.logs.some((l) => l.msg === 'import: resuming')).toBe(true);
    // The audit log and the sync outbox saw each line once too, across the kill.
    expect(await sinkCounts('88.118.81', 'R-%')).toEqual({ audit: count, auditHandles: count, outbox: count, outboxHandles: count });
  }, 300_000);

  it('has a running process take over, without restarting, the jobs of a process that was killed: the one it ran and the one queued behind it', async () => {
    // Two more processes on the same database and DATA_DIR, holding their jobs for 3 s unrenewed.
    const short = { IMPORT_LEASE_SECONDS: '3' };
    const first = await startProcess({ ...env(), ...short }, ['node', 'dist/main.js', 'serve']);
    const second = await startProcess({ ...env(), ...short }, ['node', 'dist/main.js', 'serve']);
    try {
      const count = 60_000;
      const big = Array.from({ length: count }, (_, n) => `{"suffix":"K-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/k/${n}"}}]}`).join('\n');
      const small = Array.from({ length: 500 }, (_, n) => `{"suffix":"KQ-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/kq/${n}"}}]}`).join('\n');
      const running = await call(first.url, 'POST', '/api/imports?prefix=88.118.81&mode=create', { key, raw: big, contentType: 'application/x-ndjson' });
      const queued = await call(first.url, 'POST', '/api/imports?prefix=88.118.81&mode=create', { key, raw: small, contentType: 'application/x-ndjson' });
      expect([running.status, queued.status]).toEqual([202, 202]);
      await midway(running.body.id, 2000, count);
      expect((await call(node!.url, 'GET', `/api/imports/${queued.body.id}`, { key })).body.state).toBe('queued');
      first.kill();
      await first.exited();
      // The second process started before the kill: only its periodic look can find them.
      expect(await finished(running.body.id, 120_000)).toMatchObject({ state: 'done', linesRead: count, written: count, rejected: 0 });
      expect(await finished(queued.body.id, 60_000)).toMatchObject({ state: 'done', linesRead: 500, written: 500, rejected: 0 });
      // Resumed by a process that did not restart (the suite's node also looks, every 30 s).
      expect([second, node!].some((p) => p.logs.some((l) => l.msg === 'import: resuming' && l.importId === running.body.id))).toBe(true);
    } finally {
      first.kill();
      second.kill();
    }
  }, 300_000);

  it('stops an upload\'s import when its API key is revoked, writing nothing after', async () => {
    const made = await call(node!.url, 'POST', '/api/keys', { key, body: { label: 'to be revoked' } });
    expect(made.status, made.text).toBe(201);
    const count = 60_000;
    const lines = Array.from({ length: count }, (_, n) => `{"suffix":"V-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/v/${n}"}}]}`).join('\n');
    const job = await call(node!.url, 'POST', '/api/imports?prefix=88.118.81&mode=create', { key: made.body.key, raw: lines, contentType: 'application/x-ndjson' });
    expect(job.status).toBe(202);
    await midway(job.body.id, 2000, count);
    expect((await call(node!.url, 'DELETE', `/api/keys/${made.body.id}`, { key })).status).toBe(200);
    const ended = await finished(job.body.id, 60_000);
    expect(ended).toMatchObject({ state: 'failed', error: expect.stringMatching(/revoked or expired: nothing from line \d+ on was written/) });
    const from = Number(/from line (\d+)/.exec(String(ended.error))![1]);
    expect(ended.linesRead).toBe(from - 1);
    // Exactly the lines before it were written: line n is V-(n-1).
    const { rows } = await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE prefix = '88.118.81' AND suffix LIKE 'V-%'");
    expect(rows[0].n).toBe(ended.written);
    expect(ended.written).toBe(from - 1);
    expect(ended.written).toBeLessThan(count);
  }, 120_000);

  it('stops an import between chunks on SIGTERM, leaving it to resume, and applies every line exactly once', async () => {
    const count = 60_000;
    const lines = Array.from({ length: count }, (_, n) => `{"suffix":"G-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/g/${n}"}}]}`).join('\n');
    const before = await created('88.118.81');
    const job = await upload('prefix=88.118.81&mode=create', 'application/x-ndjson', lines);
    expect(job.status).toBe(202);
    await midway(job.body.id, 3000, count);
    expect(await node!.stop('SIGTERM')).toBe(0);
    // Stopped, not failed, and its progress is exactly what it committed: a whole number of chunks.
    const stopped = (await sql.query('SELECT state, lines_read::int AS read, written::int AS written FROM imports WHERE id = $1', [job.body.id])).rows[0];
    const rows = async () => Number((await sql.query("SELECT count(*) AS n FROM identifiers WHERE prefix = '88.118.81' AND suffix LIKE 'G-%'")).rows[0].n);
    expect(stopped.state).toBe('running');
    expect(stopped.read).toBeLessThan(count);
    expect(stopped.read % 1000).toBe(0);
    expect(stopped.written).toBe(stopped.read);
    expect(await rows()).toBe(stopped.read);
    node = await start();
    const done = await finished(job.body.id);
    expect(done).toMatchObject({ state: 'done', linesRead: count, written: count, rejected: 0 });
    expect(await rows()).toBe(count);
    expect((await created('88.118.81')) - before).toBe(count);
    expect(await sinkCounts('88.118.81', 'G-%')).toEqual({ audit: count, auditHandles: count, outbox: count, outboxHandles: count });
  }, 300_000);

  it('rejects, from the command line too, the lines that break the template they name, with the item and why', async () => {
    const template = { items: [{ name: 'serialNumber', type: 'SERIAL_NO', index: 2001, required: true, minLength: 6 }, { name: 'colour', type: 'COLOUR', index: 2002, enabled: false }] };
    expect((await call(node!.url, 'PUT', '/api/templates/88.118.81/1.0', { key, body: template })).status).toBe(201);
    const file = path.join(dataDir, 'parts.csv');
    await writeFile(file, 'suffix,1001:TEMPLATE,2001:SERIAL_NO,2002:COLOUR\nT-1,1.0,SN0001,\nT-2,1.0,SN2,\nT-3,1.0,SN0003,red\nT-4,2.0,SN0004,\nT-5,,,red\n');
    const result = await runCli(['import', file, '--prefix', '88.118.81'], { ...env(), LOG_LEVEL: 'warn' });
    expect(result.code, result.stderr).toBe(0);
    const job = JSON.parse(result.stdout);
    expect(job).toMatchObject({ state: 'done', written: 2, rejected: 3, source: 'cli' });
    // The command line acts as an admin: its jobs are the node admins' (and auditors') to read.
    const rejected = (await call(node!.url, 'GET', `/api/imports/${job.id}/rejected`, { key: adminKey })).text.replace(/^\uFEFF/, '').trim().split('\r\n').slice(1);
    expect(rejected[0]).toMatch(/^3,TEMPLATE_VIOLATION,.*serialNumber.*index 2001.*is 3 long; at least 6/);
    expect(rejected[1]).toMatch(/^4,TEMPLATE_VIOLATION,.*colour.*index 2002.*is disabled/);
    expect(rejected[2]).toMatch(/^5,TEMPLATE_NOT_FOUND,.*2\.0/);
    expect((await call(node!.url, 'GET', '/api/handles/88.118.81/T-5')).status).toBe(200); // names no template: not checked
    // The command's first use froze the version for the node too.
    expect((await call(node!.url, 'GET', '/api/templates/88.118.81/1.0')).body.inUse).toBe(true);
    expect((await call(node!.url, 'PUT', '/api/templates/88.118.81/1.0', { key, body: { items: template.items.map((i) => ({ ...i, enabled: true })) } })).status).toBe(409);
  }, 120_000);

  it('puts a command-line import through the outbox of a node that syncs, even without UPSTREAM_URLS in its environment', async () => {
    expect((await sql.query('SELECT upstream FROM federation_sender')).rows[0].upstream, 'the node records at start that it syncs').toBe(true);
    const file = path.join(dataDir, 'no-upstream-env.ndjson');
    await writeLines(file, 50, (n) => `{"suffix":"U-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/u/${n}"}}]}`);
    const result = await runCli(['import', file, '--prefix', '88.118.81', '--mode', 'create'], { ...env(), UPSTREAM_URLS: '', LOG_LEVEL: 'warn' });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ state: 'done', written: 50 });
    expect(await sinkCounts('88.118.81', 'U-%')).toEqual({ audit: 50, auditHandles: 50, outbox: 50, outboxHandles: 50 });
    // Recorded as the command line's, as every other command-line change is.
    const actors = await sql.query("SELECT DISTINCT actor_key, actor_role FROM audit_log WHERE target LIKE '88.118.81/U-%'");
    expect(actors.rows).toEqual([{ actor_key: 'cli', actor_role: 'system' }]);
  }, 120_000);

  it('says so, and exits 1, when an import from the command line could not tell the nodes\' caches what it replaced', async () => {
    const file = path.join(dataDir, 'no-redis.ndjson');
    await writeLines(file, 20, (n) => `{"suffix":"NR-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/nr/${n}"}}]}`);
    const result = await runCli(['import', file, '--prefix', '88.118.81'], { ...env(), REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/Redis did not take the cache invalidations of 20 identifiers.*The data is written/);
    expect(JSON.parse(result.stdout)).toMatchObject({ state: 'done', written: 20 });
    expect((await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE prefix = '88.118.81' AND suffix LIKE 'NR-%'")).rows[0].n).toBe(20);
  }, 120_000);

  it('imports 1,000,000 lines from the command line with flat memory', async () => {
    const file = path.join(dataDir, 'million.ndjson');
    await writeLines(file, 1_000_000, (n) => `{"suffix":"M-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/m/${n}"}},{"index":2001,"type":"product.batch","data":{"format":"string","value":"2026-11-B07"}}]}`);
    // Without the outbox (as on a node that does not sync): this test is about memory and time,
    // and the sinks are counted above.
    await sql.query('UPDATE federation_sender SET upstream = false');
    const result = await runCli(['import', file, '--prefix', '88.118.81', '--mode', 'create'], { ...env(), UPSTREAM_URLS: '', LOG_LEVEL: 'warn' });
    expect(result.code, result.stderr).toBe(0);
    const job = JSON.parse(result.stdout);
    expect(job).toMatchObject({ state: 'done', linesRead: 1_000_000, written: 1_000_000, rejected: 0, source: 'cli' });
    expect(result.stderr).toMatch(/100%\s+1,000,000 lines, 1,000,000 written, 0 rejected/);
    const { rows } = await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE prefix = '88.118.81' AND suffix LIKE 'M-%'");
    expect(rows[0].n).toBe(1_000_000);
    // The node resolves what the command wrote (and its cache never held it: nothing stale).
    expect((await call(node!.url, 'GET', '/api/handles/88.118.81/M-999999')).body.values[0].data.value).toBe('https://example.com/m/999999');
    expect(result.peakRssMiB).toBeLessThan(300);
    await writeFile(file, '');
  }, 900_000);
});
