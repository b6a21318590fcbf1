/**
 * The stats scenario: a node with history (POST /bench/seed-stats: enterprises with a prefix
 * each, identifiers under every prefix, daily statistics for `days` before today), then each
 * /api/stats route under a light load, timed against GET /bench/count-identifiers (count(*) of
 * identifiers, what a report computed from the data would at least cost). The yardstick runs
 * before, between and after the routes and its runs are averaged, since the machine drifts.
 */
import http from 'node:http';
import type { Percentiles } from './histogram.js';
import { runLoad, type LoadResult } from './load.js';
import { fmt, unexpected, withNodeLog } from './measure.js';
import type { ActiveNode } from './nodes.js';
import { MemorySampler, startCpuMeter } from './proc-stats.js';
import { note, progress } from './progress.js';
import type { ScenarioResult } from './report.js';
import type { RequestPlan, StatsScenario } from './scenarios.js';

/** Few connections: the routes are judged on latency, not on how many the node serves at once. */
export const STATS_CONNECTIONS = 4;
/** Every route should answer at least this many times faster than count(*) of identifiers. */
export const STATS_TARGET = 20;
export const YARDSTICK_PATH = '/bench/count-identifiers';
/** The yardstick runs before the routes, after this many of them, and after the last. */
const YARDSTICK_EVERY = 4;
/** Yardstick runs further apart than this (slowest / fastest mean) get a note. */
const YARDSTICK_DRIFT = 1.3;

export interface StatsOptions {
  enterprises: number;
  identifiersPerPrefix: number;
  days: number;
  /** Measured seconds per route (and per yardstick run). */
  duration: number;
  /** Unmeasured seconds before each (at most 1). */
  warmup: number;
  signal: AbortSignal;
}

export interface StatsTiming {
  /** What the table shows: the path, or "count-identifiers #k". */
  name: string;
  path: string;
  meanMs: number;
  latencyMs: Percentiles;
  reqPerSec: number;
  requests: number;
  errors: number;
  statuses: Record<string, number>;
  /** Routes only: yardstick mean / this mean. */
  ratio?: number;
  pass?: boolean;
}

export interface StatsDetail {
  seed: { body: { enterprises: number; identifiersPerPrefix: number; days: number }; response: unknown; seconds: number };
  today: string;
  connections: number;
  durationS: number;
  yardstick: StatsTiming[];
  /** Names of the yardstick runs and routes in the order they ran. */
  order: string[];
  /** Mean of the yardstick runs' mean latencies. */
  yardstickMeanMs: number;
  routes: StatsTiming[];
  target: number;
}

/** The routes, dated from the node's own today (its STATS_TIME_ZONE). */
export function statsRoutes(today: string): Array<{ name: string; path: string }> {
  const year = Number(today.slice(0, 4));
  const month = Number(today.slice(5, 7));
  const quarter = Math.floor((month - 1) / 3) + 1;
  const back364 = new Date(Date.UTC(year, month - 1, Number(today.slice(8, 10))) - 364 * 86_400_000).toISOString().slice(0, 10);
  const lastQuarter = quarter === 1 ? `${year - 1}-Q4` : `${year}-Q${quarter - 1}`;
  return [
    '/api/stats/overview',
    `/api/stats/registrations?granularity=day&from=${back364}`,
    `/api/stats/resolutions?granularity=month&from=${year - 1}-01-01`,
    `/api/stats/registrations?granularity=quarter&from=${year - 2}-01-01`,
    `/api/stats/top?metric=registrations&period=${year}-Q${quarter}`,
    `/api/stats/top?metric=resolutions&period=${year}`,
    `/api/stats/report?period=${year}`,
    `/api/stats/report?period=${lastQuarter}`,
  ].map((path) => ({ name: path, path }));
}

/** POST with no time limit: the first seed of a million identifiers takes half a minute or more. */
function postJson(url: string, key: string, body: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const request = http.request(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (c: string) => (text += c));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(payload);
  });
}

async function getJson(url: string, key: string): Promise<{ status: number; contentType: string; text: string; json: unknown; ms: number }> {
  const started = performance.now();
  const response = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  const text = await response.text();
  const ms = performance.now() - started;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', text, json, ms };
}

/**
 * autocannon ends a run by closing its connections, but the requests then in flight go on in the
 * node and in Postgres (a count(*) of a million rows takes seconds under load): wait about as long
 * as the slowest answer took, so they do not weigh on the next run.
 */
const settle = (load: LoadResult): Promise<void> =>
  // No answer at all: they may run up to autocannon's 10 s timeout.
  new Promise((resolve) => setTimeout(resolve, load.requests === 0 ? 10_000 : Math.min(10_000, Math.ceil(load.latency.max))));

const fixed = (path: string, key: string): RequestPlan => ({ method: 'GET', headers: { authorization: `Bearer ${key}` }, size: 1, at: () => ({ path }) });
const round2 = (x: number): number => Math.round(x * 100) / 100;

function sum(counts: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of counts) for (const [k, v] of Object.entries(c)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export async function measureStats(scenario: StatsScenario, node: ActiveNode, key: string | undefined, options: StatsOptions): Promise<ScenarioResult> {
  const notes: Array<string | undefined> = [node.note];
  const base: ScenarioResult = { name: scenario.name, config: node.label, status: 'ok', expectedStatus: 200 };
  const failed = (why: string): ScenarioResult => ({ ...base, status: 'failed', note: [...notes, why].filter(Boolean).join('; ') });
  if (!key) return failed('needs an admin key (pass --key)');

  // 1. History. Idempotent: a second run on the same data adds nothing and takes a few seconds.
  const body = { enterprises: options.enterprises, identifiersPerPrefix: options.identifiersPerPrefix, days: options.days };
  const started = Date.now();
  const ticker = setInterval(() => progress(`[stats] seeding ${fmt(body.enterprises)} enterprises x ${fmt(body.identifiersPerPrefix)} identifiers, ${body.days} days of history: ${Math.round((Date.now() - started) / 1000)} s`), 1000);
  let seeded: { status: number; text: string };
  try {
    seeded = await postJson(`${node.url}/bench/seed-stats`, key, body);
  } catch (err) {
    return withNodeLog(node, failed(`POST /bench/seed-stats: ${(err as Error).message}`));
  } finally {
    clearInterval(ticker);
    progress.done();
  }
  const seedSeconds = round2((Date.now() - started) / 1000);
  if (seeded.status !== 200) return failed(`POST /bench/seed-stats answered ${seeded.status}: ${seeded.text.slice(0, 300)}`);
  let seedResponse: unknown;
  try {
    seedResponse = JSON.parse(seeded.text);
  } catch {
    seedResponse = seeded.text.slice(0, 300);
  }
  note(`[stats] seeded in ${seedSeconds} s: ${JSON.stringify(seedResponse)}`);

  // 2. Today, as the node counts it; then the first answer of every route must be right.
  const overview = await getJson(`${node.url}/api/stats/overview`, key);
  const today = (overview.json as { today?: unknown } | undefined)?.today;
  if (overview.status !== 200 || typeof today !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(today)) {
    return failed(`GET /api/stats/overview answered ${overview.status} ${overview.text.slice(0, 200)}, expected JSON with "today"`);
  }
  const routes = statsRoutes(today);
  // How long one answer takes alone: a slow path is warmed up by count, not by time (below).
  const alone = new Map<string, number>();
  const yard = await getJson(`${node.url}${YARDSTICK_PATH}`, key);
  alone.set(YARDSTICK_PATH, yard.ms);
  if (yard.status !== 200 || typeof (yard.json as { identifiers?: unknown } | undefined)?.identifiers !== 'number') {
    return failed(`GET ${YARDSTICK_PATH} answered ${yard.status} ${yard.text.slice(0, 200)}: is the node started with BENCH_ROUTES=1?`);
  }
  for (const route of routes) {
    const probe = await getJson(`${node.url}${route.path}`, key);
    alone.set(route.path, probe.ms);
    if (probe.status !== 200) return failed(`GET ${route.path} answered ${probe.status} ${probe.text.slice(0, 200)}`);
    if (!probe.contentType.startsWith('application/json') || probe.json === undefined) return failed(`GET ${route.path} answered Content-Type ${probe.contentType || '(none)'}, expected JSON`);
  }

  // 3. The yardstick, the routes in groups, the yardstick again, ...
  const warmup = Math.min(options.warmup, 1);
  const time = async (name: string, path: string): Promise<StatsTiming & { load: LoadResult }> => {
    const plan = fixed(path, key);
    if (warmup > 0) {
      // A path that takes longer than the warm-up could end with nothing answered and everything
      // still running: one request per connection instead, all of them awaited.
      const slow = (alone.get(path) ?? 0) > (warmup * 1000) / 10;
      const up = await runLoad({
        baseUrl: node.url,
        plan,
        connections: STATS_CONNECTIONS,
        ...(slow ? { amount: STATS_CONNECTIONS } : { duration: warmup }),
        signal: options.signal,
        onSecond: (s, rate) => progress(`[stats] warm-up ${name} ${s}${slow ? '' : `/${warmup}`} s, ${fmt(rate)} req/s`),
      });
      if (!slow) await settle(up);
    }
    const load = await runLoad({
      baseUrl: node.url,
      plan,
      connections: STATS_CONNECTIONS,
      duration: options.duration,
      signal: options.signal,
      onSecond: (s, rate) => progress(`[stats] ${name} ${s}/${options.duration} s, ${fmt(rate)} req/s`),
    });
    progress.done();
    await settle(load);
    order.push(name);
    return {
      name,
      path,
      meanMs: load.latency.mean,
      latencyMs: load.latency,
      reqPerSec: load.reqPerSec,
      requests: load.requests,
      errors: load.connErrors + unexpected(load, 200),
      statuses: load.statuses,
      load,
    };
  };
  const order: string[] = [];
  const cpu = startCpuMeter(node.pid);
  const sampler = node.pid !== undefined ? new MemorySampler(node.pid).start() : undefined;
  const yardstick: Array<StatsTiming & { load: LoadResult }> = [];
  const timed: Array<StatsTiming & { load: LoadResult }> = [];
  const stick = async () => yardstick.push(await time(`count-identifiers #${yardstick.length + 1}`, YARDSTICK_PATH));
  try {
    await stick();
    for (let i = 0; i < routes.length; i++) {
      timed.push(await time(routes[i]!.name, routes[i]!.path));
      if ((i + 1) % YARDSTICK_EVERY === 0 || i === routes.length - 1) await stick();
    }
  } finally {
    sampler?.stop();
  }
  const cpuUse = cpu();
  const memory = sampler?.stop();

  const means = yardstick.map((y) => y.meanMs).filter((m) => m > 0);
  const yardstickMeanMs = means.length ? round2(means.reduce((a, b) => a + b, 0) / means.length) : 0;
  for (const t of timed) {
    if (t.meanMs > 0 && yardstickMeanMs > 0) {
      t.ratio = round2(yardstickMeanMs / t.meanMs);
      t.pass = t.ratio >= STATS_TARGET;
    }
  }
  if (means.length > 1 && Math.max(...means) / Math.min(...means) > YARDSTICK_DRIFT) {
    notes.push(`the count(*) yardstick drifted between runs (${means.join(', ')} ms): ratios are approximate`);
  }
  const strip = ({ load: _load, ...rest }: StatsTiming & { load: LoadResult }): StatsTiming => rest;
  const all = [...yardstick, ...timed];
  const errors = all.reduce((n, t) => n + t.errors, 0);
  const connErrors = all.reduce((n, t) => n + t.load.connErrors, 0);
  const statuses = sum(all.map((t) => t.statuses));
  const alive = node.alive?.() ?? true;
  if (!alive) notes.push('the node died during the measurement');
  const stats: StatsDetail = {
    seed: { body, response: seedResponse, seconds: seedSeconds },
    today,
    connections: STATS_CONNECTIONS,
    durationS: options.duration,
    yardstick: yardstick.map(strip),
    order,
    yardstickMeanMs,
    routes: timed.map(strip),
    target: STATS_TARGET,
  };
  const joined = notes.filter(Boolean).join('; ');
  const result: ScenarioResult = {
    ...base,
    ...(joined ? { note: joined } : {}),
    requests: all.reduce((n, t) => n + t.requests, 0),
    durationS: round2(all.reduce((n, t) => n + t.load.durationS, 0)),
    statuses,
    errors,
    errorDetail: {
      connErrors,
      timeouts: all.reduce((n, t) => n + t.load.timeouts, 0),
      unexpectedStatus: errors - connErrors,
      connErrorKinds: sum(all.map((t) => t.load.errorKinds)),
    },
    ...(memory?.peakRssMiB !== undefined ? { peakRssMiB: memory.peakRssMiB } : {}),
    ...cpuUse,
    stats,
  };
  return connErrors > 0 || !alive ? withNodeLog(node, result) : result;
}
