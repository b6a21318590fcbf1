/** Statistics on real Postgres and Redis: counts equal the data, resolutions across processes, scopes, reports. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeSink } from '../../src/registry/change-sink.js';
import { registrationCountingSink } from '../../src/stats/registration-sink.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let sql: pg.Pool;
let first: TestNode;
let second: TestNode;
let keyA: string;
let keyB: string;
let enterpriseA: string;
let auditor: string;
const redisPrefix = newRedisPrefix();

/** Fails any write of a handle whose suffix starts with FAIL-, after the counting sink ran. */
const failing: ChangeSink = {
  name: 'test-failure',
  async record(_tx, changes) {
    if (changes.some((c) => c.suffix.startsWith('FAIL-'))) throw new Error('sink refuses this write');
  },
};

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  const env = { STATS_FLUSH_MS: '3600000' }; // flushed by the tests themselves
  first = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env, sinks: [failing] });
  second = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env });
  ({ key: keyA, enterpriseId: enterpriseA } = await onboard(first.url, first.adminKey, makeUscc(1101), '88.118.11', '甲公司 A Co.'));
  ({ key: keyB } = await onboard(first.url, first.adminKey, makeUscc(1102), '88.118.12', 'B Co.'));
  auditor = (await call(first.url, 'POST', '/api/admin/keys', { key: first.adminKey, body: { role: 'auditor' } })).body.key;
});

afterAll(async () => {
  await Promise.all([first?.close(), second?.close()]);
  await clearRedisPrefix(redisPrefix);
  await sql?.end();
  await db?.drop();
});

const flush = async () => {
  await first.node.app.statsWorker.tick();
  await second.node.app.statsWorker.tick();
};
const stats = (path: string, key = auditor, base = first.url) => call(base, 'GET', `/api/stats/${path}`, { key });
const put = (key: string, handle: string, options: { headers?: Record<string, string>; query?: string } = {}) =>
  call(first.url, 'PUT', `/api/handles/${handle}${options.query ?? ''}`, { key, body: { values: [url(`https://example.com/${handle}`)] }, headers: options.headers });

async function storedPerPrefix(): Promise<Record<string, number>> {
  const { rows } = await sql.query<{ prefix: string; n: string }>('SELECT prefix, count(*) AS n FROM identifiers GROUP BY prefix');
  return Object.fromEntries(rows.map((r) => [r.prefix, Number(r.n)]));
}

describe('registration counts', () => {
  it('equal the data after creates, updates, deletes, refused and rolled-back writes, before and after folding', async () => {
    const expected = { creates: 0, updates: 0, deletes: 0 };
    for (let i = 0; i < 12; i += 1) {
      expect((await put(keyA, `88.118.11/P-${i}`)).status).toBe(200);
      expected.creates += 1;
    }
    for (let i = 0; i < 4; i += 1) {
      expect((await put(keyB, `88.118.12/Q-${i}`)).status).toBe(200);
      expected.creates += 1;
    }
    for (let i = 0; i < 5; i += 1) {
      expect((await put(keyA, `88.118.11/P-${i}`)).status).toBe(200);
      expected.updates += 1;
    }
    for (let i = 0; i < 3; i += 1) {
      expect((await call(first.url, 'DELETE', `/api/handles/88.118.11/P-${i + 6}`, { key: keyA })).status).toBe(200);
      expected.deletes += 1;
    }
    // Refused: create-only on an existing handle, a stale If-Match, an invalid body, a foreign prefix.
    expect((await put(keyA, '88.118.11/P-1', { query: '?overwrite=false' })).status).toBe(409);
    expect((await put(keyA, '88.118.11/P-1', { headers: { 'if-match': '"99"' } })).status).toBe(412);
    expect((await call(first.url, 'PUT', '/api/handles/88.118.11/BAD', { key: keyA, body: { values: [] } })).status).toBe(400);
    expect((await put(keyB, '88.118.11/NOT-YOURS')).status).toBe(403);
    expect((await call(first.url, 'DELETE', '/api/handles/88.118.11/NEVER', { key: keyA })).status).toBe(404);
    // Rolled back: a later sink fails, so the write and its counted delta are both undone.
    expect((await put(keyA, '88.118.11/FAIL-1')).status).toBe(500);

    const check = async () => {
      const overview = (await stats('overview')).body;
      const stored = await storedPerPrefix();
      expect(overview.identifiers).toBe(Object.values(stored).reduce((a, b) => a + b, 0));
      expect(overview.registrations.today).toEqual(expected);
      expect(overview.registrations.quarter).toEqual(expected);
      const report = (await stats(`report?period=${overview.today}`)).body;
      for (const row of report.rows) expect(row.identifiers, row.prefix).toBe(stored[row.prefix] ?? 0);
      const a = report.rows.find((r: { prefix: string }) => r.prefix === '88.118.11');
      expect(a).toMatchObject({ enterprise: '甲公司 A Co.', creates: 12, updates: 5, deletes: 3, identifiers: 9 });
    };
    await check(); // deltas not folded yet: still exact
    await flush();
    expect((await sql.query('SELECT count(*)::int AS n FROM stats_registration_deltas')).rows[0].n).toBe(0);
    await check(); // folded into the rollups: the same
  });
});

describe('resolution counts', () => {
  it('add up across two processes after a flush: found, not found, served from cache', async () => {
    await put(keyB, '88.118.12/R-1');
    await flush();
    const before = (await stats('overview')).body.resolutions.today;
    const resolve = (base: string, handle: string) => call(base, 'GET', `/api/handles/${handle}`);
    for (const base of [first.url, second.url]) {
      for (let i = 0; i < 5; i += 1) expect((await resolve(base, '88.118.12/R-1')).status).toBe(200);
      for (let i = 0; i < 3; i += 1) expect((await resolve(base, `88.118.12/NONE-${i}`)).status).toBe(404);
    }
    const batch = await call(second.url, 'POST', '/api/resolve', { body: { handles: ['88.118.12/R-1', '88.118.12/NONE-0', 'not a handle'] } });
    expect(batch.status).toBe(200);
    await flush();
    const after = (await stats('overview')).body.resolutions.today;
    expect(after.found - before.found).toBe(11);
    expect(after.notFound - before.notFound).toBe(7);
    expect(after.total - before.total).toBe(18);
    // The first resolve on each process of R-1 came from Postgres or Redis; most later ones from L1.
    expect(after.cached - before.cached).toBeGreaterThanOrEqual(11);
    const series = (await stats('resolutions?granularity=day')).body.series;
    expect(series.at(-1)).toMatchObject({ period: (await stats('overview')).body.today, found: after.found, notFound: after.notFound });
  });
});

describe('resolutions of prefixes no enterprise holds', () => {
  it('are counted in the node total under one row, not a row per made-up prefix', async () => {
    await flush();
    const before = (await stats('overview')).body.resolutions.today;
    const invented = Array.from({ length: 50 }, (_, i) => `88.118.${900 + i}/X`);
    expect((await call(first.url, 'POST', '/api/resolve', { body: { handles: invented } })).status).toBe(200);
    await flush();
    const after = (await stats('overview')).body.resolutions.today;
    expect(after.notFound - before.notFound).toBe(50);
    const rows = await sql.query("SELECT DISTINCT prefix FROM stats_resolutions WHERE prefix LIKE '88.118.9%' OR prefix = '~other'");
    expect(rows.rows.map((r) => r.prefix)).toEqual(['~other']);
  });
});

describe('who sees what', () => {
  it('gives an enterprise its own prefixes only, auditors everything, anonymous callers nothing', async () => {
    const own = (await stats('report?period=2026', keyA)).body;
    expect(own.rows.map((r: { prefix: string }) => r.prefix)).toEqual(['88.118.11']);
    const everyone = (await stats('report?period=2026')).body;
    expect(everyone.rows.map((r: { prefix: string }) => r.prefix).sort()).toEqual(['88.118.11', '88.118.12']);
    expect((await stats('registrations?prefix=88.118.12', keyA)).status).toBe(403);
    expect((await stats('registrations?prefix=88.118.11', keyA)).status).toBe(200);
    const anonymous = await call(first.url, 'GET', '/api/stats/overview');
    expect(anonymous.status).toBe(401);
    const top = (await stats('top?metric=registrations&limit=1')).body;
    expect(top.items).toHaveLength(1);
    expect(top.items[0]).toMatchObject({ name: '甲公司 A Co.', enterpriseId: enterpriseA });
    const byEnterprise = (await stats(`registrations?enterprise=${enterpriseA}&granularity=month`)).body;
    expect(byEnterprise.series.reduce((n: number, s: { creates: number }) => n + s.creates, 0)).toBe(12);
  });

  it('refuses malformed periods and ranges with 400', async () => {
    expect((await stats('report?period=2026-Q5')).status).toBe(400);
    expect((await stats('registrations?from=2026-12-01&to=2026-01-01')).status).toBe(400);
    expect((await stats('registrations?granularity=week')).status).toBe(400);
    expect((await stats('registrations?from=2026-02-30')).status).toBe(400);
    // Refused before any bucket is made (centuries by day were millions of them), and periods
    // out of the years the statistics know are a 400, not a 500.
    const centuries = await stats('registrations?from=1900-01-01&to=9998-12-30');
    expect(centuries.status).toBe(400);
    expect(centuries.body.error.code).toBe('RANGE_TOO_LONG');
    for (const path of ['top?metric=registrations&period=0050', 'report?period=0000', 'report?period=9999', 'registrations?from=9999-12-31&to=9999-12-31']) {
      const r = await stats(path);
      expect(r.status, path).toBe(400);
      expect(['INVALID_PERIOD', 'INVALID_DATE']).toContain(r.body.error.code);
    }
  });
});

describe('period report', () => {
  it('downloads as CSV with a BOM, by format=csv or Accept: text/csv', async () => {
    const download = async (query: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${first.url}/api/stats/report${query}`, { headers: { authorization: `Bearer ${auditor}`, ...headers } });
      return { status: r.status, headers: r.headers, bytes: Buffer.from(await r.arrayBuffer()) };
    };
    for (const r of [await download('?period=2026-Q4&format=csv'), await download('?period=2026-Q4', { accept: 'text/csv' })]) {
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/csv; charset=utf-8');
      expect(r.headers.get('content-disposition')).toBe('attachment; filename="snode-report-2026-Q4.csv"');
      expect([...r.bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]); // the UTF-8 BOM
      const lines = r.bytes.subarray(3).toString('utf8').trim().split('\r\n');
      expect(lines[0]).toMatch(/^enterprise,uscc,prefix,prefix_state,identifiers_at_period_end,registrations/);
      expect(lines.find((l) => l.startsWith('甲公司 A Co.'))).toMatch(/,88\.118\.11,active,/);
    }
  });
});

describe('days in the node time zone', () => {
  it('counts a write at 00:30 Shanghai time on the new day, and a quarter across the year end', async () => {
    const sink = registrationCountingSink('Asia/Shanghai');
    const client = await sql.connect();
    try {
      await client.query('BEGIN');
      const change = (at: string, suffix: string) => ({
        op: 'create' as const,
        handle: `88.118.99/${suffix}`,
        prefix: '88.118.99',
        suffix,
        version: 1,
        values: [],
        previous: null,
        actor: { keyId: 'k', role: 'admin' as const },
        at,
      });
      await sink.record(client, [change('2026-12-31T16:30:00Z', 'NY'), change('2026-12-31T15:30:00Z', 'OLD'), change('2027-02-10T00:00:00Z', 'FEB')]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const byDay = (await stats('registrations?prefix=88.118.99&from=2026-12-30&to=2027-01-02&granularity=day', first.adminKey)).body.series;
    expect(byDay.map((s: { period: string; creates: number }) => [s.period, s.creates])).toEqual([
      ['2026-12-30', 0],
      ['2026-12-31', 1],
      ['2027-01-01', 1],
      ['2027-01-02', 0],
    ]);
    await flush();
    const byQuarter = (await stats('registrations?prefix=88.118.99&from=2026-11-01&to=2027-03-31&granularity=quarter', first.adminKey)).body.series;
    expect(byQuarter.map((s: { period: string; creates: number }) => [s.period, s.creates])).toEqual([
      ['2026-Q4', 1],
      ['2027-Q1', 2],
    ]);
  });
});

describe('a disabled prefix', () => {
  it('keeps its history for its enterprise: series, report row and overview state', async () => {
    const before = (await stats('registrations?prefix=88.118.11&granularity=month', keyA)).body;
    expect(before.series.reduce((n: number, s: { creates: number }) => n + s.creates, 0)).toBeGreaterThan(0);
    expect((await call(first.url, 'PATCH', '/api/admin/prefixes/88.118.11', { key: first.adminKey, body: { state: 'disabled' } })).status).toBe(200);
    try {
      const after = await stats('registrations?prefix=88.118.11&granularity=month', keyA);
      expect(after.status).toBe(200);
      expect(after.body.series).toEqual(before.series);
      const report = (await stats(`report?period=${new Date().getUTCFullYear()}`, keyA)).body;
      expect(report.rows.map((r: { prefix: string; prefixState: string }) => [r.prefix, r.prefixState])).toEqual([['88.118.11', 'disabled']]);
      expect((await stats('overview', keyA)).body.prefixes).toEqual({ pending: 0, active: 0, disabled: 1, rejected: 0 });
      // Another enterprise's key still sees none of it.
      expect((await stats('registrations?prefix=88.118.11', keyB)).status).toBe(403);
    } finally {
      await call(first.url, 'PATCH', '/api/admin/prefixes/88.118.11', { key: first.adminKey, body: { state: 'active' } });
    }
  });
});
