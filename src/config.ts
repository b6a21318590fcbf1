import { isIP } from 'node:net';
import Type, { type Static } from 'typebox';
import Value from 'typebox/value';
import { normalisePrefix } from './handle/handle.js';
import { checkTimeZone } from './stats/periods.js';

/**
 * Every environment variable the node reads, in one schema. README's table is generated from
 * the same descriptions (`snode config`), so the two cannot drift apart.
 */
export const ConfigSchema = Type.Object({
  HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'Interface the HTTP server binds to (0.0.0.0 for all).' }),
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'HTTP port (0 picks a free one).' }),
  DATABASE_URL: Type.String({
    default: '',
    pattern: '^(|postgres(ql)?://.*)$',
    description: 'Postgres connection URL. Empty: start an embedded Postgres in DATA_DIR.',
  }),
  REDIS_URL: Type.String({
    default: '',
    pattern: '^(|rediss?://.*)$',
    description: 'Redis URL for the shared cache. Empty: cache in the process (single-process mode).',
  }),
  REDIS_KEY_PREFIX: Type.String({ default: 'snode:', maxLength: 64, description: 'Prefix of every Redis key this node writes, so nodes can share one Redis.' }),
  DATA_DIR: Type.String({ default: './.snode', minLength: 1, description: 'Folder for the embedded Postgres, the generated secret and the first admin key.' }),
  NODE_PREFIX: Type.String({ default: '88.118', minLength: 1, maxLength: 128, description: 'The node prefix this secondary node owns; enterprise prefixes are one segment below it.' }),
  NODE_ID: Type.String({ default: 'snode-1', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'Name of this node in logs and health answers.' }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level: fatal, error, warn, info, debug, trace or silent.',
  }),
  API_KEY_SECRET: Type.String({
    default: '',
    pattern: '^(|.{32,})$',
    description: 'Server secret (32+ characters) under which API keys are stored as HMAC-SHA256. Empty: generated once into DATA_DIR/secret. Every process sharing a database needs the same value.',
  }),
  PG_POOL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 1000, description: 'Postgres connections per process.' }),
  WRITE_GROUPS_IN_FLIGHT: Type.Integer({
    default: 2,
    minimum: 1,
    maximum: 500,
    description: 'Group-commit transactions of single writes (PUT) running at once, at most half of PG_POOL_MAX; writes arriving meanwhile join the next group. Fewer make bigger groups: less CPU per write in the node, Postgres and Redis, for a little more latency.',
  }),
  GC_HEAP_GROWING_PERCENT: Type.Integer({
    default: 50,
    minimum: 0,
    maximum: 1000,
    description: "How far V8 lets the old generation grow past what the last full collection kept before it collects again, in percent (V8's --heap-growing-percent). Lower keeps resident memory flat under bulk loads (a 1,000,000-line import) at some CPU; 0 leaves V8's own heuristics, which on a machine with much RAM let the heap grow several times its live size.",
  }),
  EMBEDDED_PG_PORT: Type.Integer({ default: 0, minimum: 0, maximum: 65535, description: 'Port of the embedded Postgres on 127.0.0.1 (0 picks a free one at each start).' }),
  MAX_VALUES_PER_RECORD: Type.Integer({ default: 200, minimum: 1, maximum: 10000, description: 'Most values one identifier record may hold.' }),
  MAX_VALUE_BYTES: Type.Integer({ default: 32768, minimum: 16, maximum: 1048576, description: 'Most bytes of data one value may hold.' }),
  BODY_LIMIT_BYTES: Type.Integer({ default: 262144, minimum: 1024, maximum: 104857600, description: 'Largest request body accepted (bytes); larger answers 413.' }),
  BATCH_BODY_LIMIT_BYTES: Type.Integer({ default: 33554432, minimum: 1024, maximum: 1073741824, description: 'Largest body of POST /api/handles/batch (up to 10,000 operations), in bytes; larger answers 413.' }),
  IMPORT_MAX_BYTES: Type.Integer({ default: 10737418240, minimum: 1024, description: 'Largest file POST /api/imports accepts, in bytes (spooled to DATA_DIR/imports while it is imported).' }),
  IMPORT_LEASE_SECONDS: Type.Integer({ default: 30, minimum: 3, maximum: 3600, description: 'How long an import received by a process stays its own without the process renewing it (it renews every third of this); processes look for jobs to take over this often.' }),
  IDEMPOTENCY_KEY_TTL: Type.Integer({ default: 86400, minimum: 60, maximum: 2592000, description: 'Seconds a batch answer is kept for retries that send the same Idempotency-Key.' }),
  DEFAULT_VALUE_TTL: Type.Integer({ default: 86400, minimum: 0, maximum: 2147483647, description: 'TTL in seconds given to a value registered without one.' }),
  CACHE_MAX_TTL: Type.Integer({ default: 3600, minimum: 0, maximum: 2147483647, description: 'Longest a resolved record stays cached, in seconds, whatever its value TTLs say (0 disables caching).' }),
  CACHE_MEMORY_BYTES: Type.Integer({ default: 67108864, minimum: 0, description: 'Size bound of the in-process L1 cache of ready-to-send answers, in bytes (0 turns L1 off).' }),
  NEGATIVE_CACHE_TTL: Type.Integer({ default: 5, minimum: 0, maximum: 3600, description: 'Seconds a "handle not found" answer stays cached (0: not cached); registering the handle clears it at once.' }),
  STATS_TIME_ZONE: Type.String({ default: 'Asia/Shanghai', maxLength: 64, description: 'IANA time zone whose calendar days, months and quarters the statistics count in.' }),
  STATS_FLUSH_MS: Type.Integer({ default: 5000, minimum: 100, maximum: 3600000, description: 'How often resolution counts are flushed to Postgres and registration deltas folded, in ms; a crash loses at most this much of resolution counts.' }),
  STATS_COUNT_RESOLUTIONS: Type.Boolean({ default: true, description: 'false: do not count resolutions (registrations are always counted).' }),
  TLS_CERT: Type.String({ default: '', description: 'Path of a PEM certificate (chain): with TLS_KEY, the node serves HTTPS directly.' }),
  TLS_KEY: Type.String({ default: '', description: 'Path of the PEM private key for TLS_CERT.' }),
  TRUST_PROXY: Type.String({
    default: '',
    maxLength: 1000,
    description: 'Which proxies to believe about the client address (X-Forwarded-For), for rate limits and the audit log: empty or false: none (the socket address); true: any; a number: that many hops; or comma-separated addresses/CIDRs of your proxies.',
  }),
  KEY_CACHE_MS: Type.Integer({ default: 60000, minimum: 0, maximum: 3600000, description: 'How long a checked API key is trusted in process without asking Postgres (0: ask every time). Revocations and prefix changes clear it on every process at once (Postgres NOTIFY); this bounds it if a notification is lost.' }),
  AUDIT_LOG: Type.Boolean({ default: true, description: 'false: append no audit entries (only to measure what the audit log costs; never on a production node).' }),
  AUDIT_SEAL_MS: Type.Integer({ default: 1000, minimum: 50, maximum: 3600000, description: 'How often committed audit entries are sealed into the hash chain, in ms.' }),
  AUDIT_REFUSED_WINDOW_MS: Type.Integer({ default: 60000, minimum: 1000, maximum: 3600000, description: 'Refused requests (401, 403) are tallied per status, code, client IP and key, and written to the audit log as one entry per tally this often, in ms.' }),
  AUDIT_REFUSED_MAX_SOURCES: Type.Integer({ default: 1000, minimum: 1, maximum: 100000, description: 'Most refused-request tallies (audit entries) a process writes per AUDIT_REFUSED_WINDOW_MS; refusals past it (or past 10 per client IP) are folded into one tally each.' }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ default: 60000, minimum: 1000, maximum: 86400000, description: 'The window every rate limit counts over, in ms.' }),
  RATE_LIMIT_RESOLVE_ANONYMOUS: Type.Integer({ default: 12000, minimum: 0, description: 'Resolutions per window per client IP (IPv6 per /64) without a key (0: no limit).' }),
  RATE_LIMIT_RESOLVE_KEYED: Type.Integer({ default: 120000, minimum: 0, description: 'Resolutions per window per API key (0: no limit).' }),
  RATE_LIMIT_REGISTER: Type.Integer({ default: 30000, minimum: 0, description: 'Writes (PUT, DELETE, batch requests) per window per API key (0: no limit).' }),
  RATE_LIMIT_ONBOARDING: Type.Integer({ default: 10, minimum: 0, description: 'Applications (POST /api/enterprises/apply) per window per client IP (0: no limit).' }),
  RATE_LIMIT_ADMIN: Type.Integer({ default: 600, minimum: 0, description: 'Requests to /api/admin/* and /api/keys (key management) per window per API key (0: no limit).' }),
  RATE_LIMIT_STATS: Type.Integer({ default: 600, minimum: 0, description: 'Requests to /api/stats/* per window per API key (0: no limit).' }),
  RATE_LIMIT_AUDIT: Type.Integer({ default: 120, minimum: 0, description: 'Requests to /api/audit (queries, head, verify) per window per API key (0: no limit).' }),
  RATE_LIMIT_SYNC_MS: Type.Integer({ default: 100, minimum: 10, maximum: 60000, description: 'How often resolution and registration counts are added to the shared budgets in Redis, in ms (those limits count in the process in between).' }),
  BENCH_ROUTES: Type.Boolean({ default: false, description: 'true or 1: add the bench-only routes (/bench/ceiling, /bench/seed, /bench/seed-stats, /bench/count-identifiers, /bench/copy). Never on a production node.' }),
  ROLE: Type.Enum(['secondary', 'top-level'], {
    default: 'secondary',
    description: 'secondary: an ordinary node (federates upstream when UPSTREAM_URLS is set); top-level: also serve the national top-level side under /federation/v1/ (node registry, sync receiver with escrow copy, heartbeat monitor, takeover).',
  }),
  UPSTREAM_URLS: Type.String({
    default: '',
    pattern: '^(|https?://[^,\\s]+(,https?://[^,\\s]+)*)$',
    description: 'Top-level endpoints in priority order, comma-separated (e.g. the primary, then the Nanjing disaster-recovery endpoint). Empty: no federation. Every endpoint must serve the same top-level store.',
  }),
  PUBLIC_URL: Type.String({ default: '', pattern: '^(|https?://.+)$', description: 'Base URL partners resolve this node at: registered with the top-level node, and what QR codes of its identifiers encode. Empty: http://HOST:PORT as listening.' }),
  FEDERATION_KEY_FILE: Type.String({ default: '', description: 'PKCS#8 PEM private key that signs federation requests. Empty: DATA_DIR/federation-key.pem, generated on first start (FEDERATION_KEY_ALGORITHM) with its public half beside it.' }),
  FEDERATION_KEY_ALGORITHM: Type.Enum(['ed25519', 'sm2'], { default: 'ed25519', description: 'Algorithm of a generated federation key: ed25519 or sm2 (signed with SM3).' }),
  SYNC_BATCH_SIZE: Type.Integer({ default: 1000, minimum: 1, maximum: 10000, description: 'Most changes in one sync batch.' }),
  SYNC_BATCH_WAIT_MS: Type.Integer({ default: 200, minimum: 0, maximum: 600000, description: 'How long a change may wait for a fuller batch before it is sent anyway, in ms.' }),
  SYNC_RETRY_BASE_MS: Type.Integer({ default: 500, minimum: 10, maximum: 600000, description: 'First retry delay after a failed sync, doubled per failure (with jitter) up to SYNC_RETRY_MAX_MS.' }),
  SYNC_RETRY_MAX_MS: Type.Integer({ default: 30000, minimum: 10, maximum: 3600000, description: 'Longest delay between sync retries, in ms.' }),
  UPSTREAM_FAILOVER_AFTER: Type.Integer({ default: 3, minimum: 1, maximum: 1000, description: 'Consecutive failures of an upstream endpoint after which requests move to the next one in UPSTREAM_URLS.' }),
  UPSTREAM_PRIMARY_RETRY_MS: Type.Integer({ default: 10000, minimum: 100, maximum: 3600000, description: 'While on a later endpoint, how often the first one is tried again (the node returns to it once it answers).' }),
  UPSTREAM_CONNECT_TIMEOUT_MS: Type.Integer({ default: 5000, minimum: 100, maximum: 600000, description: 'Connect timeout of upstream and owner-node HTTP requests, in ms.' }),
  UPSTREAM_HEADERS_TIMEOUT_MS: Type.Integer({ default: 10000, minimum: 100, maximum: 600000, description: 'How long an upstream request waits for the answer headers, in ms.' }),
  UPSTREAM_BODY_TIMEOUT_MS: Type.Integer({ default: 30000, minimum: 100, maximum: 600000, description: 'Longest silence while an upstream answer body arrives, in ms.' }),
  HEARTBEAT_INTERVAL_MS: Type.Integer({ default: 5000, minimum: 100, maximum: 3600000, description: 'How often a federated node reports its status and figures to the top-level node, in ms.' }),
  PREFIX_CACHE_SECONDS: Type.Integer({ default: 60, minimum: 0, maximum: 86400, description: 'How long a node remembers where a foreign prefix is homed (top-level lookups), in seconds.' }),
  FEDERATION_MAX_HOPS: Type.Integer({ default: 3, minimum: 1, maximum: 16, description: 'Most federation hops a resolution may take (X-Snode-Hops); a request past it answers 508, so misconfigured homes cannot loop.' }),
  FEDERATION_TIMESTAMP_WINDOW_MS: Type.Integer({ default: 300000, minimum: 1000, maximum: 86400000, description: 'top-level: how far a signed request timestamp may be from the clock, in ms; older or newer requests are refused.' }),
  NODE_DOWN_AFTER_MS: Type.Integer({ default: 15000, minimum: 100, maximum: 86400000, description: 'top-level: silence after which a node is marked down and its prefixes are answered from the escrow copy, in ms.' }),
  METRICS: Type.Boolean({ default: true, description: 'false: no /metrics and no per-request timing (Prometheus metrics are on by default).' }),
  METRICS_PORT: Type.String({
    default: '',
    pattern: '^(|[0-9]{1,5})$',
    description: 'Empty: /metrics is served on the API port, to auditor and admin keys. A port: served there instead, without a key, on a listener of its own bound to METRICS_HOST (0 picks a free one).',
  }),
  METRICS_HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'Interface the METRICS_PORT listener binds to: put it where only your Prometheus can reach it.' }),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ default: 10000, minimum: 100, maximum: 600000, description: 'How long a graceful shutdown waits for in-flight requests before it closes their connections; the rest of the shutdown (last flushes, pools, embedded Postgres) then has up to 20 s more before the process exits anyway.' }),
});

export type Config = Static<typeof ConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** What an error message may show of a value: never a secret, never a URL's credentials. */
function shown(name: string, value: string): string {
  if (name === 'API_KEY_SECRET') return `(${value.length} characters, not shown)`;
  // A value that is not a well-formed URL may still hold a password anywhere ("host=db
  // password=...", "user:pw@db/x"): only its length is shown.
  if (/_URLS?$/.test(name)) {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return `(${value.length} characters, not shown: not a URL)`;
    // Greedy to the last @: better to hide the host than to show part of a password.
    return JSON.stringify(value.replace(/^([^:]*:\/\/).*@/, '$1***@'));
  }
  return JSON.stringify(value);
}

/** Reads, defaults, coerces and validates the environment; throws ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value.trim();
  }
  const converted = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw));
  const errors = [...Value.Errors(ConfigSchema, converted)];
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const name = e.instancePath.replace(/^\//, '') || '(config)';
      const given = env[name];
      return `${name}: ${e.message}${given !== undefined ? ` (got ${shown(name, given)})` : ''}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${[...new Set(lines)].join('\n  ')}`);
  }
  const config = converted as Config;
  try {
    checkTimeZone(config.STATS_TIME_ZONE);
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  STATS_TIME_ZONE: ${(err as Error).message}`);
  }
  if (config.METRICS_PORT !== '' && Number(config.METRICS_PORT) > 65535) {
    throw new ConfigError(`invalid configuration:\n  METRICS_PORT: must be a port number, 0 to 65535 (got ${shown('METRICS_PORT', config.METRICS_PORT)})`);
  }
  if ((config.TLS_CERT === '') !== (config.TLS_KEY === '')) {
    throw new ConfigError('invalid configuration:\n  TLS_CERT, TLS_KEY: give both (HTTPS) or neither (HTTP)');
  }
  try {
    config.NODE_PREFIX = normalisePrefix(config.NODE_PREFIX);
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  NODE_PREFIX: ${(err as Error).message} (got ${shown('NODE_PREFIX', env.NODE_PREFIX ?? '')})`);
  }
  // Checked here, not when the HTTP server is built (after the database is up and migrated).
  const proxies = trustProxy(config.TRUST_PROXY);
  const bad = Array.isArray(proxies) ? proxies.find((p) => !isProxyAddress(p)) : undefined;
  if (bad !== undefined) {
    throw new ConfigError(`invalid configuration:\n  TRUST_PROXY: ${JSON.stringify(bad)} is not an IP address, an address/prefix length, loopback, linklocal or uniquelocal (got ${shown('TRUST_PROXY', config.TRUST_PROXY)})`);
  }
  return config;
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** What fastify's trustProxy list takes: an address, address/prefix length, or a named range. */
function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.has(entry.toLowerCase())) return true;
  const [address, bits, ...rest] = entry.split('/');
  const version = isIP(address ?? '');
  if (version === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(bits)) return false;
  return Number(bits) <= (version === 4 ? 32 : 128);
}

/** TRUST_PROXY as fastify's trustProxy option. */
export function trustProxy(value: string): boolean | number | string[] {
  const v = value.trim().toLowerCase();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  if (/^[0-9]+$/.test(v)) return Number(v);
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Rows for `snode config` and the README table. */
export function describeConfig(): Array<{ name: string; default: string; description: string }> {
  return Object.entries(ConfigSchema.properties).map(([name, schema]) => {
    const s = schema as { default?: unknown; description?: string };
    return { name, default: s.default === '' ? '(empty)' : String(s.default), description: s.description ?? '' };
  });
}
