/**
 * What each scenario sends, to which node configuration, and what a right answer looks like.
 * Every request asks for a different identifier of the scenario's set (a rotation, not one URL
 * repeated), so no layer can serve the bench from a single hot entry.
 */

// stats comes last: its seed adds a million identifiers under other prefixes, which would change
// what resolve-pg reads (a larger index) were it to run before.
export const SCENARIO_NAMES = ['ceiling', 'resolve-l1', 'resolve-l1-nocount', 'resolve-redis', 'resolve-pg', 'resolve-miss', 'resolve-batch', 'resolve-proto', 'resolve-l1-nolimit', 'resolve-l1-nometrics', 'write-audit', 'register-single', 'register-batch', 'import', 'stats', 'sync-drain'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/**
 * default: L1 in-process cache + Redis; l1-off: Redis only; no-cache: every resolve reads Postgres;
 * no-count: default with STATS_COUNT_RESOLUTIONS=false (resolutions are not counted);
 * no-audit: default with AUDIT_LOG=false (identifier writes append no audit entry);
 * no-limit: default with the resolution rate limits off (RATE_LIMIT_RESOLVE_* = 0);
 * no-metrics: default with METRICS=false (no per-request timing, no /metrics).
 */
export type NodeConfigName = 'default' | 'l1-off' | 'no-cache' | 'no-count' | 'no-audit' | 'no-limit' | 'no-metrics';

export const BATCH_SIZE = 100;
/** Creates per POST /api/handles/batch in register-batch (the figure). */
export const REGISTER_BATCH_SIZE = 1000;
/** register-batch's connections: 4 requests of 1,000 writes in flight fill a 10-connection pool's worth of work. */
const REGISTER_BATCH_CONNECTIONS = 4;
/**
 * Handles per POST /api/resolve when warming a large set. Not the route's limit of 1000: 20
 * connections of 1000-identifier batches left the node at ~500 MiB RSS (against ~250 MiB with
 * 100), and that residue would count as resolve-redis' own memory. 100 warms 100k identifiers in
 * ~13 s here, against ~10 s with 1000 and ~30 s one GET at a time.
 */
export const WARM_BATCH_SIZE = 100;
export const PROTOBUF = 'application/x-protobuf';

export interface SetInfo {
  prefix: string;
  /** Seeded identifiers: BENCH-0 .. BENCH-<seeded-1>. */
  seeded: number;
  /** Hot set: BENCH-0 .. BENCH-<hot-1>; also the size of the miss set NOPE-0 .. NOPE-<hot-1>. */
  hot: number;
  /** An admin key, for the scenarios that write. */
  key?: string;
}

export interface RequestPlan {
  method: 'GET' | 'POST' | 'PUT';
  headers: Record<string, string>;
  /** Distinct requests before the rotation repeats. */
  size: number;
  /** Distinct identifiers those requests cover, when not one per request. */
  identifiers?: number;
  /** The i-th request (i grows without bound; implementations wrap). */
  at(i: number): { path: string; body?: string };
}

export interface Probe {
  status: number;
  contentType: string;
  body: Buffer;
}

/**
 * resolve-redis walks at most this many identifiers. A 10-second measurement touches a few hundred
 * thousand at most, and warming all of a 10,000,000 seed into Redis would take half an hour here.
 */
export const REDIS_SET_MAX = 1_000_000;
const redisSet = (set: SetInfo): number => Math.min(set.seeded, REDIS_SET_MAX);

interface ScenarioBase {
  name: ScenarioName;
  summary: string;
  config: NodeConfigName;
  /** Meaningless without Redis: skipped when Redis is unreachable. */
  needsRedis: boolean;
}

/** Seeds statistics history, then times each stats route against count(*) of identifiers (bench/stats.ts). */
export interface StatsScenario extends ScenarioBase {
  kind: 'stats';
}

/** Streams --import-lines new identifiers into POST /api/imports and watches the node's memory (bench/import.ts). */
export interface ImportScenario extends ScenarioBase {
  kind: 'import';
}

/** Registers changes with the top-level node down, then times the drain (bench/sync-drain.ts). */
export interface DrainScenario extends ScenarioBase {
  kind: 'sync-drain';
}

/**
 * One request plan under load. `load`: warm, warm up, measure on the scenario's node
 * (bench/measure.ts). `pair`: the same plan on two nodes side by side, `baseline` and `config`,
 * measured in interleaved slices (bench/pair.ts).
 */
/**
 * What a load scenario is measured against in interleaved slices on the same node: the ceiling
 * by default, or its own yardstick (register-batch: a bare COPY of the same rows).
 */
export interface Yardstick {
  label: string;
  expectedStatus: number;
  identifiersPerRequest: number;
  plan(set: SetInfo): RequestPlan;
  check(probe: Probe, first: { path: string; body?: string }, set: SetInfo): string | undefined;
  /** After the measurement: undo what the yardstick left (a scratch table). */
  cleanup?(baseUrl: string, set: SetInfo): Promise<void>;
}

export interface Scenario extends ScenarioBase {
  kind: 'load' | 'pair';
  /** Measured against this instead of the ceiling. */
  yardstick?: Yardstick;
  /** Connections for this scenario whatever --connections says (large bodies). */
  connections?: number;
  /** Shortest slice in seconds, whatever --duration and --slice give (slow requests). */
  minSlice?: number;
  /** pair: the configuration `config` is compared with. */
  baseline?: NodeConfigName;
  /** Served by the node alone (no Postgres or Redis work): CPU used elsewhere is interference. */
  selfContained: boolean;
  /** The answer every request should get; anything else counts as an error. */
  expectedStatus: number;
  identifiersPerRequest: number;
  plan(set: SetInfo): RequestPlan;
  /**
   * One pass that loads the scenario's set into the tier it measures; `batchResolve` says whether
   * POST /api/resolve answers on this node (far quicker for large sets).
   */
  warm?(set: SetInfo, batchResolve: boolean): RequestPlan;
  /** How this run departs from the scenario's description, if it does. */
  caveat?(set: SetInfo): string | undefined;
  /** Why the first request's answer is wrong, or undefined when it is right. */
  check(probe: Probe, first: { path: string; body?: string }, set: SetInfo): string | undefined;
}

const bench = (set: SetInfo, n: number) => `${set.prefix}/BENCH-${n}`;

/**
 * Visits 0..size-1 each once per cycle in a scattered order: i * stride mod size, with the stride
 * coprime to size. Sequential suffixes would sit next to each other in the Postgres index and in
 * Redis' hash slots, flattering the cold tiers.
 */
export function scatter(size: number): (i: number) => number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let stride = 7_919; // prime, larger than any small set, small enough that i * stride stays exact
  while (size > 1 && gcd(stride, size) !== 1) stride += 2;
  return (i) => (i % size) * stride % size;
}

function handleGets(set: SetInfo, size: number, order: (i: number) => number, route: (n: number) => string, headers: Record<string, string> = {}): RequestPlan {
  return { method: 'GET', headers, size, at: (i) => ({ path: route(order(i)) }) };
}

/** POST /api/resolve plans: request i asks for `perRequest` consecutive identifiers of the set. */
function batches(set: SetInfo, size: number, perRequest: number, shifting: boolean): RequestPlan {
  const windows = Math.ceil(size / perRequest);
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    size: windows,
    identifiers: size,
    at: (i) => {
      // Shifting by one identifier each cycle keeps successive cycles' bodies distinct.
      const start = (i % windows) * perRequest + (shifting ? Math.floor(i / windows) : 0);
      const count = shifting ? perRequest : Math.min(perRequest, size - start);
      const handles = Array.from({ length: count }, (_, k) => bench(set, (start + k) % size));
      return { path: '/api/resolve', body: JSON.stringify({ handles }) };
    },
  };
}

/**
 * PUT plans: request i replaces WRITE-<n> (n scattered over the hot set's size) with a value that
 * changes every cycle, so each request is a real update (a new version, an audit entry).
 */
function writes(set: SetInfo): RequestPlan {
  const order = scatter(set.hot);
  return {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${set.key ?? ''}` },
    size: set.hot,
    at: (i) => ({
      path: `/api/handles/${set.prefix}/WRITE-${order(i)}`,
      body: JSON.stringify({ values: [{ index: 1, type: 'URL', data: { format: 'string', value: `https://bench.example/${i}` } }] }),
    }),
  };
}

/**
 * Creates: the i-th request built registers REG-<run>-<i> with PUT ?overwrite=false (201 Created), a handle no
 * request has asked for before (the run tag keeps a rerun on the same database from colliding).
 * `size` is only nominal: the rotation never repeats within a run.
 */
function creates(set: SetInfo): RequestPlan {
  const run = Date.now().toString(36);
  let next = 0;
  return {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${set.key ?? ''}` },
    size: Number.MAX_SAFE_INTEGER,
    // Its own counter, not the rotation's index: the first-answer check, the warm-up and the
    // slices each start the rotation again, and a create must never be sent twice.
    at: () => {
      const i = next++;
      return {
        path: `/api/handles/${set.prefix}/REG-${run}-${i}?overwrite=false`,
        body: JSON.stringify({ values: [{ index: 1, type: 'URL', data: { format: 'string', value: `https://bench.example/part/${i}` } }, { index: 2, type: 'EMAIL', data: { format: 'string', value: 'qa@bench.example' } }] }),
      };
    },
  };
}

/**
 * register-batch: request i creates REGB-<run>-<i*1000> .. +999 in one POST to `path` (the batch
 * route, or the bench's bare COPY with the very same body and rows).
 */
function batchCreates(set: SetInfo, run: string, path: string): RequestPlan {
  let next = 0;
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${set.key ?? ''}` },
    size: Number.MAX_SAFE_INTEGER,
    // Its own counter, as in creates(): no row is sent twice (the scratch table has the primary key too).
    at: () => {
      const i = next++;
      const operations = Array.from({ length: REGISTER_BATCH_SIZE }, (_, k) => {
        const n = i * REGISTER_BATCH_SIZE + k;
        return { op: 'create', handle: `${set.prefix}/REGB-${run}-${n}`, values: [{ index: 1, type: 'URL', data: { format: 'string', value: `https://bench.example/part/${n}` } }, { index: 2, type: 'EMAIL', data: { format: 'string', value: 'qa@bench.example' } }] };
      });
      return { path, body: JSON.stringify({ mode: 'partial', operations }) };
    },
  };
}

const registerBatchRun = Date.now().toString(36);

/** One pass over `size` identifiers of the hot/seeded set, in scatter order or as batches. */
function warmPass(set: SetInfo, size: number, batchResolve: boolean): RequestPlan {
  return batchResolve ? batches(set, size, WARM_BATCH_SIZE, false) : handleGets(set, size, (i) => i % size, (n) => `/api/handles/${bench(set, n)}`);
}

function json(probe: Probe): unknown {
  try {
    return JSON.parse(probe.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

function checkRecord(probe: Probe, path: string): string | undefined {
  if (probe.status !== 200) return `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}`;
  if (!probe.contentType.startsWith('application/json')) return `answered Content-Type ${probe.contentType || '(none)'}, expected JSON`;
  const body = json(probe) as { responseCode?: unknown; handle?: unknown; values?: unknown } | undefined;
  const handle = decodeURIComponent(path.replace(/^\/api\/handles\//, ''));
  if (body?.responseCode !== 1 || body.handle !== handle || !Array.isArray(body.values) || body.values.length === 0) {
    return `answered an unexpected body for ${handle}: ${probe.body.toString('utf8').slice(0, 200)}`;
  }
  return undefined;
}

const resolveL1 = {
  plan: (set: SetInfo) => handleGets(set, set.hot, scatter(set.hot), (n) => `/api/handles/${bench(set, n)}`),
  warm: (set: SetInfo) => warmPass(set, set.hot, false),
  check: (probe: Probe, first: { path: string }) => checkRecord(probe, first.path),
};

const scenarios: Array<Scenario | StatsScenario | DrainScenario | ImportScenario> = [
  {
    name: 'ceiling',
    kind: 'load',
    summary: 'GET /bench/ceiling/<handle>: a record-sized fixed body, no lookups (the framework alone)',
    config: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    plan: (set) => handleGets(set, set.hot, (i) => i % set.hot, (n) => `/bench/ceiling/${bench(set, n)}`),
    check: (probe) => (probe.status === 200 ? undefined : `answered ${probe.status}: is the node started with BENCH_ROUTES=1?`),
  },
  {
    name: 'resolve-l1',
    kind: 'load',
    summary: 'GET /api/handles/<handle> over the hot set, warmed into the in-process cache',
    config: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    ...resolveL1,
  },
  {
    name: 'resolve-l1-nocount',
    kind: 'pair',
    summary: 'resolve-l1 on a no-count node and a default node side by side, in interleaved slices (what counting resolutions costs)',
    config: 'no-count',
    baseline: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    ...resolveL1,
  },
  {
    name: 'resolve-redis',
    kind: 'load',
    summary: `GET /api/handles/<handle> over every seeded identifier (at most ${REDIS_SET_MAX}), in-process cache off, Redis warmed`,
    config: 'l1-off',
    needsRedis: true,
    selfContained: false,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    plan: (set) => handleGets(set, redisSet(set), scatter(redisSet(set)), (n) => `/api/handles/${bench(set, n)}`),
    warm: (set, batchResolve) => warmPass(set, redisSet(set), batchResolve),
    caveat: (set) => (set.seeded > REDIS_SET_MAX ? `over BENCH-0..${REDIS_SET_MAX - 1} of the ${set.seeded.toLocaleString('en')} seeded` : undefined),
    check: (probe, first) => checkRecord(probe, first.path),
  },
  {
    name: 'resolve-pg',
    kind: 'load',
    summary: 'GET /api/handles/<handle> over every seeded identifier, no cache: each one reads Postgres',
    config: 'no-cache',
    needsRedis: false,
    selfContained: false,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    plan: (set) => handleGets(set, set.seeded, scatter(set.seeded), (n) => `/api/handles/${bench(set, n)}`),
    check: (probe, first) => checkRecord(probe, first.path),
  },
  {
    name: 'resolve-miss',
    kind: 'load',
    summary: 'GET /api/handles/<prefix>/NOPE-<i>: as many identifiers as the hot set, none of which exists (404 expected)',
    config: 'default',
    needsRedis: false,
    selfContained: false,
    expectedStatus: 404,
    identifiersPerRequest: 1,
    plan: (set) => handleGets(set, set.hot, scatter(set.hot), (n) => `/api/handles/${set.prefix}/NOPE-${n}`),
    warm: (set) => handleGets(set, set.hot, (i) => i % set.hot, (n) => `/api/handles/${set.prefix}/NOPE-${n}`),
    check: (probe) => {
      const body = json(probe) as { responseCode?: unknown } | undefined;
      return probe.status === 404 && body?.responseCode === 100 ? undefined : `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}, expected 404 with responseCode 100`;
    },
  },
  {
    name: 'resolve-batch',
    kind: 'load',
    summary: `POST /api/resolve with ${BATCH_SIZE} identifiers of the hot set per request`,
    config: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: BATCH_SIZE,
    plan: (set) => batches(set, set.hot, BATCH_SIZE, true),
    warm: (set) => warmPass(set, set.hot, false),
    check: (probe, first) => {
      if (probe.status !== 200) return `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}`;
      const asked = (JSON.parse(first.body ?? '{}') as { handles: string[] }).handles;
      const body = json(probe) as { results?: Array<{ responseCode?: unknown; handle?: unknown }> } | undefined;
      if (!Array.isArray(body?.results) || body.results.length !== asked.length) return `expected ${asked.length} results, got ${probe.body.toString('utf8').slice(0, 200)}`;
      const wrong = body.results.findIndex((r, k) => r.handle !== asked[k] || r.responseCode !== 1);
      return wrong < 0 ? undefined : `result ${wrong} is ${JSON.stringify(body.results[wrong]).slice(0, 200)}, expected ${asked[wrong]} with responseCode 1`;
    },
  },
  {
    name: 'resolve-proto',
    kind: 'load',
    summary: 'GET /api/handles/<handle> with Accept: application/x-protobuf over the hot set',
    config: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    plan: (set) => handleGets(set, set.hot, scatter(set.hot), (n) => `/api/handles/${bench(set, n)}`, { accept: PROTOBUF }),
    warm: (set) => handleGets(set, set.hot, (i) => i % set.hot, (n) => `/api/handles/${bench(set, n)}`, { accept: PROTOBUF }),
    check: (probe) => {
      if (probe.status !== 200) return `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}`;
      return probe.contentType.startsWith(PROTOBUF) ? undefined : `answered Content-Type ${probe.contentType || '(none)'}, expected ${PROTOBUF}`;
    },
  },
  {
    name: 'resolve-l1-nolimit',
    kind: 'pair',
    summary: 'resolve-l1 on a node without resolution rate limits and a default node side by side, in interleaved slices (what the anonymous rate limit costs an L1 hit)',
    config: 'no-limit',
    baseline: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    ...resolveL1,
  },
  {
    name: 'resolve-l1-nometrics',
    kind: 'pair',
    summary: 'resolve-l1 on a node without metrics (METRICS=false) and a default node side by side, in interleaved slices (what the Prometheus metrics cost an L1 hit)',
    config: 'no-metrics',
    baseline: 'default',
    needsRedis: false,
    selfContained: true,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    ...resolveL1,
  },
  {
    name: 'write-audit',
    kind: 'pair',
    summary: 'PUT /api/handles/<prefix>/WRITE-<i> (admin key, one URL value) on a default node and a no-audit node side by side, in interleaved slices (what the audit log costs writes)',
    config: 'no-audit',
    baseline: 'default',
    needsRedis: false,
    selfContained: false,
    expectedStatus: 200,
    identifiersPerRequest: 1,
    plan: (set) => writes(set),
    // One PUT per identifier of the set first: on a fresh database the first pass creates them,
    // and the measured slices must be updates on both nodes.
    warm: (set) => writes(set),
    check: (probe) => (probe.status === 200 ? undefined : `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}`),
  },
  {
    name: 'register-single',
    kind: 'load',
    summary: 'PUT /api/handles/<prefix>/REG-<run>-<i>?overwrite=false (admin key, two values): one new identifier per request, each answered 201',
    config: 'default',
    needsRedis: false,
    selfContained: false,
    expectedStatus: 201,
    identifiersPerRequest: 1,
    plan: (set) => creates(set),
    check: (probe) => (probe.status === 201 ? undefined : `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}, expected 201 Created`),
  },
  {
    name: 'register-batch',
    kind: 'load',
    summary: `POST /api/handles/batch with ${REGISTER_BATCH_SIZE} creates per request (admin key), against a bare COPY of the same rows into a scratch table LIKE identifiers (POST /bench/copy, same body) in interleaved slices`,
    config: 'default',
    needsRedis: false,
    selfContained: false,
    expectedStatus: 200,
    identifiersPerRequest: REGISTER_BATCH_SIZE,
    connections: REGISTER_BATCH_CONNECTIONS,
    minSlice: 4,
    plan: (set) => batchCreates(set, registerBatchRun, '/api/handles/batch'),
    check: (probe) => {
      if (probe.status !== 200) return `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}`;
      const body = json(probe) as { counts?: { created?: unknown; failed?: unknown } } | undefined;
      return body?.counts?.created === REGISTER_BATCH_SIZE && body.counts.failed === 0 ? undefined : `expected ${REGISTER_BATCH_SIZE} created, got ${probe.body.toString('utf8').slice(0, 300)}`;
    },
    yardstick: {
      label: 'copy',
      expectedStatus: 200,
      identifiersPerRequest: REGISTER_BATCH_SIZE,
      plan: (set) => batchCreates(set, registerBatchRun, '/bench/copy'),
      check: (probe) => {
        const body = json(probe) as { copied?: unknown } | undefined;
        return probe.status === 200 && body?.copied === REGISTER_BATCH_SIZE ? undefined : `answered ${probe.status} ${probe.body.toString('utf8').slice(0, 200)}: is the node started with BENCH_ROUTES=1?`;
      },
      cleanup: async (baseUrl, set) => {
        const response = await fetch(`${baseUrl}/bench/copy`, { method: 'DELETE', headers: { authorization: `Bearer ${set.key ?? ''}` } });
        const text = await response.text();
        if (!response.ok) throw new Error(`DELETE /bench/copy answered ${response.status} ${text.slice(0, 200)}: bench_copy_scratch may be left behind`);
      },
    },
  },
  {
    name: 'import',
    kind: 'import',
    summary: "POST /api/imports?mode=create with --import-lines NDJSON lines (new identifiers, two values each), streamed, until the job is done: lines/s and the node's peak RSS",
    config: 'default',
    needsRedis: false,
  },
  {
    name: 'stats',
    kind: 'stats',
    summary: 'POST /bench/seed-stats (enterprises, identifiers, daily history), then each /api/stats route against GET /bench/count-identifiers',
    config: 'default',
    needsRedis: false,
  },
  {
    name: 'sync-drain',
    kind: 'sync-drain',
    summary: 'PUT /api/handles/<handle> x --drain-changes with the top-level node down, then the outbox drained to it: drain rate / registration rate',
    config: 'default',
    needsRedis: false,
  },
];

export function scenario(name: ScenarioName): Scenario | StatsScenario | DrainScenario | ImportScenario {
  const found = scenarios.find((s) => s.name === name);
  if (!found) throw new Error(`no scenario ${name}`);
  return found;
}
