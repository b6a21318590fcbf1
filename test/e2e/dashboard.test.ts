/**
 * The auditors' dashboard in a real headless browser (Debian's chromium driven by
 * playwright-core) against a real node: sign in, the overview the API returns, granularity,
 * top enterprises, the CSV download, a screenshot under test/artifacts/.
 */
import { access, mkdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const NAME_A = '南京示例制造有限公司';
const NAME_B = 'Suzhou Parts Co., Ltd.';

let db: TestDatabase;
let node: TestNode;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let auditorKey: string;
/** Uncaught page errors and CSP refusals: either means the page is broken. */
const pageProblems: string[] = [];

async function api(path: string, key = auditorKey) {
  const reply = await call(node.url, 'GET', path, { key });
  expect(reply.status, reply.text).toBe(200);
  return reply.body;
}

beforeAll(async () => {
  await access(CHROMIUM).catch(() => {
    throw new Error(`the dashboard test needs chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  });
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: true });

  const a = await onboard(node.url, node.adminKey, makeUscc(901), '88.118.8', NAME_A);
  const b = await onboard(node.url, node.adminKey, makeUscc(902), '88.118.9', NAME_B);
  const auditor = await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor', label: 'dashboard test' } });
  expect(auditor.status, auditor.text).toBe(201);
  auditorKey = auditor.body.key;

  const put = async (key: string, handle: string, target: string) => {
    const r = await call(node.url, 'PUT', `/api/handles/${handle}`, { key, body: { values: [url(target)] } });
    expect(r.status, r.text).toBe(200);
  };
  for (const n of [1, 2, 3]) await put(a.key, `88.118.8/PART-${n}`, `https://example.com/parts/${n}`);
  await put(a.key, '88.118.8/PART-1', 'https://example.com/parts/1-rev2');
  await put(a.key, '88.118.8/GONE', 'https://example.com/gone');
  expect((await call(node.url, 'DELETE', '/api/handles/88.118.8/GONE', { key: a.key })).status).toBe(200);
  await put(b.key, '88.118.9/AXLE-1', 'https://example.com/axles/1');

  for (const handle of ['88.118.8/PART-1', '88.118.8/PART-1', '88.118.8/PART-2', '88.118.9/AXLE-1', '88.118.8/NO-SUCH']) {
    await call(node.url, 'GET', `/api/handles/${handle}`);
  }
  // Fold registration deltas and flush resolution counts now rather than on the timer.
  await node.node.app.statsWorker.tick();

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, locale: 'zh-CN' });
  page = await context.newPage();
  page.on('pageerror', (err) => pageProblems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) pageProblems.push(`csp: ${msg.text()}`);
  });
});

afterAll(async () => {
  await browser?.close();
  await node?.close();
  if (node) await clearRedisPrefix(node.config.REDIS_KEY_PREFIX);
  await db?.drop();
});

const OVERVIEW_FIGURES = [
  ['identifiers'],
  ['enterprises'],
  ...['pending', 'active', 'disabled', 'rejected'].map((s) => ['prefixes', s]),
  ...['today', 'month', 'quarter'].flatMap((p) => [
    ...['creates', 'updates', 'deletes'].map((c) => ['registrations', p, c]),
    ...['found', 'notFound', 'cached', 'total'].map((c) => ['resolutions', p, c]),
  ]),
];

const rows = (testId: string) => page.getByTestId(testId).locator('tbody tr');

interface Stored {
  session: Array<string | null>;
  local: number;
  cookie: string;
}
// A string, evaluated in the page: the test's TypeScript has no DOM types.
const storage = () =>
  page.evaluate('({ session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)), local: localStorage.length, cookie: document.cookie })') as Promise<Stored>;

describe('the auditors dashboard in a browser', () => {
  it('serves the page with its security headers and the chart library from node_modules', async () => {
    const folder = await call(node.url, 'GET', '/dashboard');
    expect(folder.status).toBe(301);
    expect(folder.headers.get('location')).toBe('/dashboard/');
    const index = await call(node.url, 'GET', '/dashboard/');
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(index.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // no inline scripts
    expect(index.text).not.toMatch(/\s(src|href)="(https?:)?\/\//); // nothing from another host
    const again = await call(node.url, 'GET', '/dashboard/', { headers: { 'if-none-match': index.headers.get('etag') ?? '' } });
    expect(again.status).toBe(304);
    const vendor = await call(node.url, 'GET', '/dashboard/vendor/uPlot.iife.min.js');
    expect(vendor.status).toBe(200);
    expect(vendor.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(vendor.text).toContain('uPlot');
    const missing = await call(node.url, 'GET', '/dashboard/..%2Fpackage.json');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('ROUTE_NOT_FOUND');
  });

  it('refuses a wrong key with a message and keeps nothing', async () => {
    await page.goto(`${node.url}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/');
    await page.getByTestId('key-input').fill('snk_not-a-real-key');
    await page.getByTestId('sign-in').click();
    const error = page.getByTestId('login-error');
    await error.waitFor({ state: 'visible' });
    expect(await error.textContent()).toContain('INVALID_API_KEY');
    expect(await page.getByTestId('dashboard').isVisible()).toBe(false);
    expect(await storage()).toEqual({ session: [], local: 0, cookie: '' });
  });

  it('signs in with an auditor key and shows the overview the API returns', async () => {
    await page.getByTestId('key-input').fill(auditorKey);
    await page.getByTestId('sign-in').click();
    await page.getByTestId('dashboard').waitFor({ state: 'visible' });
    await page.locator('[data-testid="overview-identifiers"][data-value]').waitFor();

    const overview = await api('/api/stats/overview');
    expect(overview.registrations.today).toEqual({ creates: 5, updates: 1, deletes: 1 });
    expect(overview.resolutions.today.total).toBe(5);
    expect(overview.identifiers).toBe(4);
    for (const path of OVERVIEW_FIGURES) {
      const expected = path.reduce((o, k) => o[k], overview);
      const cell = page.getByTestId(`overview-${path.join('-')}`);
      expect(await cell.getAttribute('data-value'), path.join('.')).toBe(String(expected));
      expect((await cell.textContent())?.replace(/[,\s]/g, ''), path.join('.')).toBe(String(expected));
    }

    // The key lives in this tab's session only: not localStorage, not a cookie.
    expect(await storage()).toEqual({ session: [auditorKey], local: 0, cookie: '' });
    expect(await context.cookies()).toEqual([]);
  });

  it('switches granularity and redraws the charts and the table', async () => {
    const chart = page.getByTestId('chart-registrations');
    const today: string = (await api('/api/stats/overview')).today;

    for (const granularity of ['day', 'quarter', 'month'] as const) {
      await page.getByTestId('granularity').selectOption(granularity);
      await page.locator(`[data-testid="chart-resolutions"][data-granularity="${granularity}"]`).waitFor();
      await page.locator(`[data-testid="series-table"][data-granularity="${granularity}"]`).waitFor({ state: 'attached' });
      const series = await api(`/api/stats/registrations?granularity=${granularity}`);
      expect(await chart.getAttribute('data-granularity')).toBe(granularity);
      expect(await chart.getAttribute('data-buckets')).toBe(String(series.series.length));
      expect(await chart.locator('canvas').count()).toBe(1);
      expect(await page.getByTestId('from').inputValue()).toBe(series.from);
      expect(await page.getByTestId('to').inputValue()).toBe(series.to);
      expect(await rows('series-table').count()).toBe(series.series.length);
      // The bucket holding today shows today's writes and resolutions.
      const last = series.series.at(-1);
      expect(last.start <= today).toBe(true);
      const cells = await rows('series-table').last().locator('th, td').allTextContents();
      expect(cells.slice(0, 4)).toEqual([last.period, String(last.creates), String(last.updates), String(last.deletes)]);
      if (granularity === 'day') expect(last.period).toBe(today);
    }
    expect(await rows('series-table').count()).toBeGreaterThan(0);
  });

  it('lists the top enterprises for either metric', async () => {
    const top = await api(`/api/stats/top?metric=registrations&period=${await page.getByTestId('top-period').inputValue()}&limit=10`);
    expect(top.items.map((i: { name: string }) => i.name)).toEqual([NAME_A, NAME_B]);
    await expect.poll(() => rows('top-table').count()).toBe(2);
    const first = await rows('top-table').first().locator('td').allTextContents();
    expect(first).toEqual(['1', NAME_A, top.items[0].uscc, String(top.items[0].value)]);

    await page.getByTestId('top-metric').selectOption('resolutions');
    await page.locator('[data-testid="top-table"][data-metric="resolutions"]').waitFor({ state: 'attached' });
    const byResolutions = await api(`/api/stats/top?metric=resolutions&period=${await page.getByTestId('top-period').inputValue()}`);
    const shown = await rows('top-table').locator('td:last-child').allTextContents();
    expect(shown).toEqual(byResolutions.items.map((i: { value: number }) => String(i.value)));
  });

  it('downloads the period report as CSV with a BOM, then signs out', async () => {
    const period = await page.getByTestId('report-period').inputValue();
    expect(period).toMatch(/^\d{4}-Q[1-4]$/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-csv').click()]);
    expect(download.suggestedFilename()).toBe(`snode-report-${period}.csv`);
    const bytes = await readFile(await download.path());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const lines = bytes.subarray(3).toString('utf8').split('\r\n');
    expect(lines[0]).toMatch(/^enterprise,uscc,prefix,/);
    const rowA = lines.find((line) => line.startsWith(`${NAME_A},`));
    expect(rowA).toContain(',88.118.8,');
    expect(await page.getByTestId('report-status').textContent()).toContain(`snode-report-${period}.csv`);
    expect(await page.getByTestId('error').isVisible()).toBe(false);

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });

    await page.getByTestId('sign-out').click();
    await page.getByTestId('login').waitFor({ state: 'visible' });
    expect((await storage()).session).toEqual([]);
    expect(pageProblems).toEqual([]);
  });
});
