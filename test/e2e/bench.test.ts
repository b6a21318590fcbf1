/**
 * Smoke run of the bench: every scenario for about two seconds on a small seed (resolve-l1-nocount
 * in two 1 s slices per node, stats on 20 enterprises x 50 identifiers and 30 days of history,
 * 1 s per route, sync-drain over 300 changes), against the machine's Postgres (a database of its own) and Redis (a key prefix
 * of its own). It checks that each scenario produced requests and saw no errors, and that the two
 * comparisons have their measurements, never how fast anything was.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { clearRedisPrefix } from '../helpers/node.js';
import { ROOT } from '../helpers/process.js';

const SCENARIOS = ['ceiling', 'resolve-l1', 'resolve-l1-nocount', 'resolve-redis', 'resolve-pg', 'resolve-miss', 'resolve-batch', 'resolve-proto', 'resolve-l1-nolimit', 'resolve-l1-nometrics', 'write-audit', 'register-single', 'register-batch', 'import', 'stats', 'sync-drain'];

interface Side {
  config: string;
  reqPerSec: number;
  requests: number;
  sliceReqPerSec: number[];
  errors: number;
}
interface Timing {
  name: string;
  path: string;
  meanMs: number;
  requests: number;
  errors: number;
  ratio?: number;
}

interface BenchRecord {
  nodes: { dataDir: string; redisKeyPrefix: string; nodeStarts: number };
  seed: { count: number };
  results: Array<{
    name: string;
    status: string;
    note?: string;
    requests?: number;
    errors?: number;
    statuses?: Record<string, number>;
    target?: { pass: boolean | undefined };
    pair?: { slices: number; baseline: Side; measured: Side; ratio: number };
    ratio?: number;
    warm?: { requests: number; via: string };
    import?: { lines: number; written: number; rejected: number; state: string };
    reqPerSec?: number;
    peakRssMiB?: number;
    interleavedCeiling?: { label?: string; identifiersPerRequest?: number; reqPerSec: number; requests: number; slices: number; sliceReqPerSec: number[]; scenarioSliceReqPerSec: number[]; errors: number };
    drain?: { changes: number; registerPerSec: number; drainPerSec: number; verify: { inSync: boolean; drift: boolean } };
    stats?: { seed: { body: unknown; response: { identifiers: number } }; today: string; yardstick: Timing[]; yardstickMeanMs: number; routes: Timing[] };
  }>;
}

let db: TestDatabase;
let outDir: string;
let record: BenchRecord | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  outDir = await mkdtemp(path.join(os.tmpdir(), 'snode-bench-test-'));
});

afterAll(async () => {
  // The runner removes its own keys and folder; this only matters when it was killed.
  if (record) await clearRedisPrefix(record.nodes.redisKeyPrefix);
  await db?.drop();
  await rm(outDir, { recursive: true, force: true });
});

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'PORT', 'DATA_DIR', 'API_KEY_SECRET', 'NODE_PREFIX', 'CACHE_MEMORY_BYTES']) delete env[name];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/bench-runner/run.js', ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('bench smoke run', () => {
  it('runs every scenario with requests and no errors, and cleans up after itself', async () => {
    const out = path.join(outDir, 'results.json');
    const run = await runBench([
      '--database-url', db.url,
      '--redis-url', TEST_REDIS_URL,
      '--seed', '2000',
      '--hot', '1000',
      '--connections', '4',
      '--duration', '2',
      '--warmup', '0.5',
      '--slices', '2',
      '--slice', '1',
      '--stats-enterprises', '20',
      '--stats-identifiers-per-prefix', '50',
      '--stats-days', '30',
      '--stats-duration', '1',
      '--drain-changes', '300',
      '--import-lines', '3000',
      '--json-out', out,
    ]);
    const log = `exit ${run.code}\n${run.stdout}\n${run.stderr.slice(-6000)}`;
    expect(existsSync(out), log).toBe(true);
    record = JSON.parse(await readFile(out, 'utf8')) as BenchRecord;

    expect(record.seed.count).toBe(2000);
    expect(record.results.map((r) => r.name)).toEqual(SCENARIOS);
    for (const r of record.results) {
      expect({ name: r.name, status: r.status, note: r.note }, log).toMatchObject({ name: r.name, status: 'ok' });
      expect(r.requests, `${r.name} produced no requests\n${log}`).toBeGreaterThan(0);
      expect({ name: r.name, errors: r.errors, statuses: r.statuses }, log).toMatchObject({ name: r.name, errors: 0 });
    }
    // resolve-l1-nocount: both nodes measured in every slice, and compared.
    const pair = record.results.find((r) => r.name === 'resolve-l1-nocount')!.pair;
    expect(pair, log).toBeDefined();
    expect(pair!.slices).toBe(2);
    expect([pair!.baseline.config, pair!.measured.config]).toEqual(['default', 'no-count']);
    for (const side of [pair!.baseline, pair!.measured]) {
      expect(side.sliceReqPerSec, log).toHaveLength(2);
      for (const rate of side.sliceReqPerSec) expect(rate, `${side.config}: a slice without requests\n${log}`).toBeGreaterThan(0);
      expect(side.requests).toBeGreaterThan(0);
      expect(side.errors).toBe(0);
    }
    expect(pair!.ratio).toBeGreaterThan(0);
    expect(record.results.find((r) => r.name === 'resolve-l1-nocount')!.target?.pass).not.toBeUndefined();
    // write-audit: the same comparison for writes, audit log on (default) against off (no-audit).
    const writes = record.results.find((r) => r.name === 'write-audit')!.pair;
    expect(writes, log).toBeDefined();
    expect([writes!.baseline.config, writes!.measured.config]).toEqual(['default', 'no-audit']);
    for (const side of [writes!.baseline, writes!.measured]) {
      for (const rate of side.sliceReqPerSec) expect(rate, `${side.config}: a slice without writes\n${log}`).toBeGreaterThan(0);
      expect(side.errors).toBe(0);
    }
    expect(record.results.find((r) => r.name === 'write-audit')!.target?.pass).not.toBeUndefined();
    // The write-audit handles were created by a warm pass, so the measured PUTs are updates.
    expect(record.results.find((r) => r.name === 'write-audit')!.warm, log).toMatchObject({ requests: 1000, via: 'PUT' });
    // A pair is judged against its other node: no ratio to a ceiling of another node and window.
    for (const name of ['resolve-l1-nocount', 'resolve-l1-nolimit', 'resolve-l1-nometrics', 'write-audit']) {
      expect(record.results.find((r) => r.name === name)!.ratio, name).toBeUndefined();
    }

    // Every scenario judged against the ceiling: a ceiling measured on its node in interleaved
    // slices (2 s in 2 slices of 1 s each), and the ratio taken against it.
    for (const name of ['resolve-l1', 'resolve-redis', 'resolve-pg', 'resolve-miss', 'resolve-batch', 'resolve-proto', 'register-single', 'register-batch']) {
      const r = record.results.find((x) => x.name === name)!;
      const c = r.interleavedCeiling;
      expect(c, `${name}: no interleaved ceiling\n${log}`).toBeDefined();
      expect(c!.slices).toBe(2);
      expect(c!.reqPerSec, `${name}: interleaved ceiling without requests\n${log}`).toBeGreaterThan(0);
      expect(c!.errors).toBe(0);
      for (const rate of [...c!.sliceReqPerSec, ...c!.scenarioSliceReqPerSec]) expect(rate, `${name}: a slice without requests\n${log}`).toBeGreaterThan(0);
      expect(r.ratio, name).toBeGreaterThan(0);
    }
    expect(record.results.find((r) => r.name === 'ceiling')!.interleavedCeiling).toBeUndefined();
    // register-single: every measured request created an identifier (201), against the ceiling.
    const single = record.results.find((r) => r.name === 'register-single')!;
    expect(Object.keys(single.statuses ?? {}), log).toEqual(['201']);
    expect(single.interleavedCeiling!.label ?? 'ceiling').toBe('ceiling');
    // register-batch: against its own yardstick, a bare COPY of the same rows, taken per row.
    const batch = record.results.find((r) => r.name === 'register-batch')!;
    expect(batch.interleavedCeiling).toMatchObject({ label: 'copy', identifiersPerRequest: 1000 });
    expect(batch.ratio).toBeCloseTo(((batch.reqPerSec ?? 0) * 1000) / (batch.interleavedCeiling!.reqPerSec * 1000), 1);
    expect(run.stdout).toMatch(/\| register-batch .*copy [\d,]+ rows/);
    const sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    try {
      const scratch = await sql.query("SELECT to_regclass('bench_copy_scratch') AS t");
      expect(scratch.rows[0].t, 'the COPY scratch table is dropped after the scenario').toBeNull();
      const batchRows = await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE suffix LIKE 'REGB-%'");
      expect(batchRows.rows[0].n).toBeGreaterThanOrEqual(batch.requests! * 1000);
    } finally {
      await sql.end();
    }
    // import: the whole file written, the job done, the node's memory sampled.
    const imported = record.results.find((r) => r.name === 'import')!;
    expect(imported.import, log).toMatchObject({ lines: 3000, written: 3000, rejected: 0, state: 'done' });
    expect(imported.peakRssMiB).toBeGreaterThan(0);
    expect(run.stdout).toContain('ceiling req/s (interleaved)');

    // sync-drain: every change registered, drained and verified; both rates measured.
    const drain = record.results.find((r) => r.name === 'sync-drain')!.drain;
    expect(drain, log).toMatchObject({ changes: 300, verify: { inSync: true, drift: false } });
    expect(drain!.registerPerSec).toBeGreaterThan(0);
    expect(drain!.drainPerSec).toBeGreaterThan(0);

    // stats: the seed as asked, the yardstick before, between and after, and every route timed.
    const stats = record.results.find((r) => r.name === 'stats')!.stats;
    expect(stats, log).toBeDefined();
    expect(stats!.seed.body).toEqual({ enterprises: 20, identifiersPerPrefix: 50, days: 30 });
    expect(stats!.seed.response.identifiers).toBe(1000);
    expect(stats!.today).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(stats!.yardstick).toHaveLength(3);
    expect(stats!.yardstickMeanMs).toBeGreaterThan(0);
    expect(stats!.routes.map((t) => t.path.replace(/\?.*/, ''))).toEqual([
      '/api/stats/overview',
      '/api/stats/registrations',
      '/api/stats/resolutions',
      '/api/stats/registrations',
      '/api/stats/top',
      '/api/stats/top',
      '/api/stats/report',
      '/api/stats/report',
    ]);
    for (const t of [...stats!.yardstick, ...stats!.routes]) {
      expect({ path: t.path, errors: t.errors }, log).toEqual({ path: t.path, errors: 0 });
      expect(t.requests, `${t.path} produced no requests\n${log}`).toBeGreaterThan(0);
      expect(t.meanMs).toBeGreaterThan(0);
    }
    for (const t of stats!.routes) expect(t.ratio, t.path).toBeGreaterThan(0);

    // Every scenario in the printed table, the two extra tables, and a clean exit.
    for (const name of SCENARIOS) expect(run.stdout).toContain(`| ${name} `);
    expect(run.stdout).toContain('| count on / count off');
    expect(run.stdout).toContain('| /api/stats/overview ');
    expect(run.code, log).toBe(0);

    // Nothing left behind: the nodes' DATA_DIR and Redis keys are gone.
    expect(existsSync(record.nodes.dataDir)).toBe(false);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const left: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${record.nodes.redisKeyPrefix}*`, 'COUNT', 1000);
        left.push(...keys);
        cursor = next;
      } while (cursor !== '0');
      expect(left).toEqual([]);
    } finally {
      redis.disconnect();
    }
    // About 200 s alone here; sync-drain starts two more nodes, and other e2e files run beside it.
  }, 600_000);

  it('refuses options that cannot work, with exit code 2 and nothing started', async () => {
    const refusals: Array<[string[], RegExp]> = [
      [['--url', 'http://127.0.0.1:1/snode'], /without a path/],
      [['--url', 'localhost:8080'], /http:\/\/ or https:\/\//],
      [['--url', 'http://127.0.0.1:1', '--database-url', db.url], /with --url the node is yours/],
      [['--key', 'abc'], /--key is for --url/],
      [['--scenario', ','], /names no scenario/],
      [['--slice', '1.5'], /--slice must be an integer/],
    ];
    for (const [args, message] of refusals) {
      const run = await runBench(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr, args.join(' ')).toMatch(message);
      expect(run.stdout).toBe('');
    }
  });
});
