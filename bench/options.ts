/** Command-line options of the bench runner: parsed, validated, with their defaults. */
import { parseArgs } from 'node:util';
import { scenario, SCENARIO_NAMES, type ScenarioName } from './scenarios.js';

export interface BenchOptions {
  /** Bench this running node instead of starting our own. */
  url: string | undefined;
  /** Admin key for POST /bench/seed (required with --url to seed; otherwise read from DATA_DIR/admin.key). */
  key: string | undefined;
  scenarios: ScenarioName[];
  connections: number;
  /** Measured seconds per scenario. */
  duration: number;
  /** Unmeasured seconds of load before each measurement (after the warm pass over the set). */
  warmup: number;
  /** Identifiers seeded: <prefix>/BENCH-0 .. BENCH-<seed-1>. */
  seed: number;
  /** Size of the hot set (resolve-l1, resolve-batch, resolve-proto, ceiling paths). */
  hot: number;
  /** Enterprise prefix the identifiers are seeded under; the started node's NODE_PREFIX is its parent. */
  prefix: string;
  databaseUrl: string | undefined;
  redisUrl: string;
  profileDir: string | undefined;
  jsonOut: string | undefined;
  /** resolve-l1-nocount: measured slices per node, and seconds per slice. */
  slices: number;
  slice: number;
  /** stats: what POST /bench/seed-stats creates, and measured seconds per route. */
  statsEnterprises: number;
  statsIdentifiersPerPrefix: number;
  statsDays: number;
  statsDuration: number;
  /** sync-drain: changes registered, then drained. */
  drainChanges: number;
  /** import: NDJSON lines streamed into POST /api/imports. */
  importLines: number;
}

export class UsageError extends Error {}

// 20 connections, from runs on this 2-core machine (8 s each, pipelining 1):
//   c=5:  ceiling ~25k req/s, p99 0.9 ms; but resolve-pg only 2.3k: requests wait on Postgres
//         and the tiers with I/O are under-loaded;
//   c=10: ceiling ~21k, p99 1.7 ms; resolve-redis ~11k, resolve-pg ~5.9k;
//   c=20: ceiling ~27k, p99 2.5 ms; resolve-redis ~13k, resolve-pg ~6.0k;
//   c=50: ceiling ~24-27k, p99 6-7 ms; resolve-pg ~6k with p99 22-28 ms.
// The ceiling saturates from 5-10 connections (the node on one core, this load generator on the
// other); the Redis and Postgres tiers need about 20 to keep the node busy while requests wait on
// I/O; beyond that only the queue grows, and p99 with it.
export const DEFAULT_CONNECTIONS = 20;

// resolve-l1-nocount: 5 slices of 2 s on each node, 20 s measured in all, ~30 s with the starts,
// warm passes and warm-ups.
export const DEFAULT_SLICES = 5;
export const DEFAULT_SLICE = 2;
// stats: 1,000,000 identifiers across 1,000 prefixes and a year of daily figures.
export const DEFAULT_STATS = { enterprises: 1000, identifiersPerPrefix: 1000, days: 365, duration: 3 };

export const USAGE = `Usage: npm run bench -- [options]

Starts its own snode processes (BENCH_ROUTES=1) unless --url is given, seeds identifiers, runs the
scenarios with autocannon and prints each one's throughput and latency as a ratio to "ceiling".

Options:
  --url URL               bench this running node (started with BENCH_ROUTES=1) instead
  --key KEY               admin API key (with --url: needed to seed; otherwise read from DATA_DIR/admin.key)
  --scenario A[,B...]     scenarios to run, in the standard order (default: all; see below)
  --connections C         concurrent connections (default ${DEFAULT_CONNECTIONS})
  --duration S            measured seconds per scenario (default 10)
  --warmup S              unmeasured seconds of load before each measurement (default 2)
  --seed N                identifiers to seed, e.g. 1000000 (default 100000)
  --hot N                 hot-set size for resolve-l1/-batch/-proto/-miss (default 10000, at most --seed)
  --prefix P              enterprise prefix to seed under (default 88.118.8)
  --database-url URL      Postgres for the started nodes (default $DATABASE_URL, else embedded)
  --redis-url URL         Redis for the started nodes (default $REDIS_URL, else redis://127.0.0.1:6379)
  --profile DIR           start nodes with --cpu-prof --cpu-prof-dir DIR (a .cpuprofile per node)
  --json-out FILE         write the JSON results here instead of bench/results/<timestamp>.json
  --slices N              resolve-l1-nocount: measured slices on each of its two nodes (default ${DEFAULT_SLICES})
  --slice S               resolve-l1-nocount: seconds per slice (default ${DEFAULT_SLICE})
  --stats-enterprises N   stats: enterprises seeded, one prefix each (default ${DEFAULT_STATS.enterprises})
  --stats-identifiers-per-prefix N
                          stats: identifiers seeded under each of those prefixes (default ${DEFAULT_STATS.identifiersPerPrefix})
  --stats-days N          stats: days of daily statistics history before today (default ${DEFAULT_STATS.days})
  --stats-duration S      stats: measured seconds per route (default ${DEFAULT_STATS.duration})
  --drain-changes N       sync-drain: changes registered with the top-level node down, then drained
                          (default 100000; needs --database-url, where it creates two databases)
  --import-lines N        import: NDJSON lines streamed into POST /api/imports (default 1000000,
                          what the memory target is meant at)
  -h, --help              this help

Scenarios:
${SCENARIO_NAMES.map((name) => {
  const s = scenario(name);
  const config = s.kind === 'pair' && s.baseline ? `${s.config} vs ${s.baseline}` : s.config;
  return `  ${name.padEnd(18)} [${config}] ${s.summary}`;
}).join('\n')}
`;

function positiveNumber(name: string, raw: string | undefined, fallback: number, integer: boolean, min = 1): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got "${raw}"`);
  }
  return value;
}

function atMost(name: string, value: number, max: number): number {
  if (value > max) throw new UsageError(`--${name} must be at most ${max}, got ${value}`);
  return value;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        key: { type: 'string' },
        scenario: { type: 'string', multiple: true },
        connections: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        seed: { type: 'string' },
        hot: { type: 'string' },
        prefix: { type: 'string' },
        'database-url': { type: 'string' },
        'redis-url': { type: 'string' },
        profile: { type: 'string' },
        'json-out': { type: 'string' },
        slices: { type: 'string' },
        slice: { type: 'string' },
        'stats-enterprises': { type: 'string' },
        'stats-identifiers-per-prefix': { type: 'string' },
        'stats-days': { type: 'string' },
        'stats-duration': { type: 'string' },
        'drain-changes': { type: 'string' },
        'import-lines': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';

  let scenarios: ScenarioName[] = [...SCENARIO_NAMES];
  if (v.scenario) {
    const wanted = v.scenario.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
    const unknown = wanted.filter((s) => !(SCENARIO_NAMES as readonly string[]).includes(s));
    if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIO_NAMES.join(', ')}`);
    // Always the standard order, whatever order they were named in: ceiling first.
    if (wanted.length === 0) throw new UsageError(`--scenario names no scenario; known: ${SCENARIO_NAMES.join(', ')}`);
    scenarios = SCENARIO_NAMES.filter((s) => wanted.includes(s));
  }

  if (v.url !== undefined) {
    let url: URL;
    try {
      url = new URL(v.url);
    } catch {
      throw new UsageError(`--url is not a URL: ${v.url}`);
    }
    // The load generator sends absolute paths (/api/...): a base path would be dropped from them.
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be http:// or https://, got ${v.url}`);
    if (url.pathname.replace(/\/+$/, '') !== '' || url.search || url.hash) throw new UsageError(`--url must be the node's origin, without a path or query (got ${v.url})`);
    if (v.profile) throw new UsageError('--profile needs the bench to start the node itself (drop --url)');
    if (v['database-url'] !== undefined || v['redis-url'] !== undefined) throw new UsageError('--database-url and --redis-url configure the nodes the bench starts; with --url the node is yours');
  } else if (v.key !== undefined) {
    throw new UsageError('--key is for --url: the nodes the bench starts get a fresh API_KEY_SECRET, and it makes its own admin key');
  }
  const prefix = v.prefix ?? '88.118.8';
  if (!/^[A-Za-z0-9]+(\.[A-Za-z0-9]+)*$/.test(prefix)) throw new UsageError(`--prefix must be dot-separated letters and digits, got "${prefix}"`);

  const seed = positiveNumber('seed', v.seed, 100_000, true);
  const hot = Math.min(positiveNumber('hot', v.hot, 10_000, true), seed);
  return {
    url: v.url?.replace(/\/+$/, ''),
    key: v.key,
    scenarios,
    connections: positiveNumber('connections', v.connections, DEFAULT_CONNECTIONS, true),
    duration: positiveNumber('duration', v.duration, 10, false, 0.5),
    warmup: positiveNumber('warmup', v.warmup, 2, false, 0),
    seed,
    hot,
    prefix,
    databaseUrl: v['database-url'] ?? (env.DATABASE_URL || undefined),
    redisUrl: v['redis-url'] ?? (env.REDIS_URL || 'redis://127.0.0.1:6379'),
    profileDir: v.profile,
    jsonOut: v['json-out'],
    slices: positiveNumber('slices', v.slices, DEFAULT_SLICES, true),
    // Whole seconds: autocannon ends a run on its one-second tick.
    slice: positiveNumber('slice', v.slice, DEFAULT_SLICE, true),
    // The limits of POST /bench/seed-stats.
    statsEnterprises: atMost('stats-enterprises', positiveNumber('stats-enterprises', v['stats-enterprises'], DEFAULT_STATS.enterprises, true), 100_000),
    statsIdentifiersPerPrefix: atMost('stats-identifiers-per-prefix', positiveNumber('stats-identifiers-per-prefix', v['stats-identifiers-per-prefix'], DEFAULT_STATS.identifiersPerPrefix, true, 0), 1_000_000),
    statsDays: atMost('stats-days', positiveNumber('stats-days', v['stats-days'], DEFAULT_STATS.days, true, 0), 3660),
    statsDuration: positiveNumber('stats-duration', v['stats-duration'], DEFAULT_STATS.duration, false, 0.5),
    drainChanges: positiveNumber('drain-changes', v['drain-changes'], 100_000, true),
    importLines: positiveNumber('import-lines', v['import-lines'], 1_000_000, true),
  };
}

/** The options as recorded in the results file: no keys, no passwords. */
export function redactedOptions(o: BenchOptions): Record<string, unknown> {
  return { ...o, key: o.key ? '(given)' : undefined, databaseUrl: maskUrl(o.databaseUrl), redisUrl: maskUrl(o.redisUrl) };
}

export function maskUrl(raw: string | undefined): string | undefined {
  if (!raw) return raw;
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
