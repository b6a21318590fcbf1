/**
 * The node each scenario talks to: either nodes the bench starts, one configuration at a time on
 * one DATA_DIR (so the seeded data and the admin key survive restarts), or the --url node as is.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { obtainAdminKey, revokeAdminKey, type AdminKey } from './admin-key.js';
import { NodeProcess } from './node-process.js';
import { note } from './progress.js';
import { deleteKeys, redisProblem } from './redis.js';
import type { NodeConfigName } from './scenarios.js';

export interface ActiveNode {
  url: string;
  /** For /proc sampling; undefined for a --url node. */
  pid: number | undefined;
  /** What the results table shows as the node configuration. */
  label: string;
  /** A caveat about running this configuration here. */
  note?: string;
  /** The node's last log lines (started nodes only): what went wrong when requests fail. */
  logTail?: () => string;
  alive?: () => boolean;
}

export interface NodeSource {
  /** False when the scenarios that need Redis must be skipped; with the reason. */
  redis: { ok: boolean; problem?: string };
  acquire(config: NodeConfigName): Promise<ActiveNode>;
  /**
   * Two fresh nodes running side by side on the same data, `first` then `second` (the pair
   * scenario); undefined when this source cannot start nodes (--url).
   */
  acquirePair?(first: NodeConfigName, second: NodeConfigName): Promise<[ActiveNode, ActiveNode]>;
  adminKey(): Promise<string | undefined>;
  /** Stops whatever runs, removes what the bench created. Never throws. */
  close(): Promise<void>;
  /** SIGKILL everything started: the second Ctrl-C. */
  killNow(): void;
  profiles: string[];
  describe(): Record<string, unknown>;
}

/** Every variable the bench sets or clears for its nodes; the rest of the environment passes through. */
const CONTROLLED = ['HOST', 'PORT', 'BENCH_ROUTES', 'LOG_LEVEL', 'DATA_DIR', 'API_KEY_SECRET', 'DATABASE_URL', 'REDIS_URL', 'REDIS_KEY_PREFIX', 'CACHE_MEMORY_BYTES', 'NODE_PREFIX', 'STATS_COUNT_RESOLUTIONS', 'AUDIT_LOG', 'METRICS', 'METRICS_PORT',
  'RATE_LIMIT_RESOLVE_ANONYMOUS', 'RATE_LIMIT_RESOLVE_KEYED', 'RATE_LIMIT_REGISTER', 'RATE_LIMIT_STATS', 'RATE_LIMIT_ADMIN', 'RATE_LIMIT_AUDIT'];

interface Running {
  config: NodeConfigName;
  node: NodeProcess;
}

export interface StartedNodesOptions {
  databaseUrl: string | undefined;
  redisUrl: string;
  /** Enterprise prefix the bench seeds; the node prefix is its parent. */
  prefix: string;
  profileDir: string | undefined;
  key: string | undefined;
}

export class StartedNodes implements NodeSource {
  redis: { ok: boolean; problem?: string } = { ok: true };
  profiles: string[] = [];
  readonly redisKeyPrefix = `snode-bench:${randomBytes(5).toString('hex')}:`;
  private readonly secret = randomBytes(24).toString('hex');
  private current: Running | undefined;
  /**
   * The second node of a pair, running beside `current` on the same DATA_DIR (with an embedded
   * Postgres it attaches to the cluster `current` started). Stopped before any other acquire.
   */
  private companion: Running | undefined;
  private dataDir = '';
  private key: AdminKey | undefined;
  private starts = 0;

  private constructor(private readonly options: StartedNodesOptions) {}

  static async create(options: StartedNodesOptions): Promise<StartedNodes> {
    const nodes = new StartedNodes(options);
    nodes.dataDir = await mkdtemp(path.join(os.tmpdir(), 'snode-bench-'));
    // As root the embedded Postgres runs as the postgres user, which must be able to enter DATA_DIR.
    await chmod(nodes.dataDir, 0o755);
    const problem = await redisProblem(options.redisUrl);
    if (problem) nodes.redis = { ok: false, problem: `Redis at ${options.redisUrl} is unreachable (${problem})` };
    return nodes;
  }

  env(config: NodeConfigName): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of CONTROLLED) delete env[name];
    const parent = this.options.prefix.split('.').slice(0, -1).join('.');
    Object.assign(env, {
      HOST: '127.0.0.1',
      PORT: '0',
      BENCH_ROUTES: '1',
      LOG_LEVEL: 'info',
      DATA_DIR: this.dataDir,
      API_KEY_SECRET: this.secret,
      REDIS_KEY_PREFIX: this.redisKeyPrefix,
      // Rate limits stay on (their cost is part of every figure) with budgets the load never reaches.
      RATE_LIMIT_RESOLVE_ANONYMOUS: '1000000000',
      RATE_LIMIT_RESOLVE_KEYED: '1000000000',
      RATE_LIMIT_REGISTER: '1000000000',
      RATE_LIMIT_STATS: '1000000000', // the stats scenario times every /api/stats route
      RATE_LIMIT_ADMIN: '1000000000',
      RATE_LIMIT_AUDIT: '1000000000',
      ...(parent ? { NODE_PREFIX: parent } : {}),
      ...(this.options.databaseUrl ? { DATABASE_URL: this.options.databaseUrl } : {}),
    });
    if (config === 'default' || config === 'no-count' || config === 'no-audit' || config === 'no-limit' || config === 'no-metrics') env.REDIS_URL = this.redis.ok ? this.options.redisUrl : '';
    if (config === 'no-count') env.STATS_COUNT_RESOLUTIONS = 'false';
    if (config === 'no-audit') env.AUDIT_LOG = 'false';
    if (config === 'no-metrics') env.METRICS = 'false';
    if (config === 'no-limit') Object.assign(env, { RATE_LIMIT_RESOLVE_ANONYMOUS: '0', RATE_LIMIT_RESOLVE_KEYED: '0' });
    if (config === 'l1-off') Object.assign(env, { REDIS_URL: this.options.redisUrl, CACHE_MEMORY_BYTES: '0' });
    if (config === 'no-cache') Object.assign(env, { REDIS_URL: '', CACHE_MEMORY_BYTES: '0' });
    return env;
  }

  private labelOf(config: NodeConfigName): { label: string; caveat: string | undefined } {
    const withRedis = config === 'default' || config === 'no-count' || config === 'no-audit' || config === 'no-limit' || config === 'no-metrics';
    if (!withRedis || this.redis.ok) return { label: config, caveat: undefined };
    return { label: `${config} (no Redis)`, caveat: 'Redis unreachable: in-process cache only' };
  }

  private async start(config: NodeConfigName, beside?: NodeConfigName): Promise<NodeProcess> {
    const embedded = this.options.databaseUrl ? '' : beside ? ', on the embedded Postgres of the first' : ', embedded Postgres';
    note(`starting a node: ${this.labelOf(config).label}${beside ? ` (beside ${this.labelOf(beside).label})` : ''}${embedded}${this.options.profileDir ? ', --cpu-prof' : ''}`);
    const node = await NodeProcess.start({ env: this.env(config), dataDir: this.dataDir, beside: beside !== undefined, ...(this.options.profileDir ? { profileDir: this.options.profileDir } : {}) });
    this.starts += 1;
    return node;
  }

  async acquire(config: NodeConfigName): Promise<ActiveNode> {
    await this.stopCompanion();
    const running = this.current;
    const { label, caveat } = this.labelOf(config);
    if (running && running.config === config && running.node.alive()) return this.active(running.node, label, caveat);
    await this.stopCurrent();
    const node = await this.start(config);
    this.current = { config, node };
    return this.active(node, label, caveat);
  }

  async acquirePair(first: NodeConfigName, second: NodeConfigName): Promise<[ActiveNode, ActiveNode]> {
    // Both fresh: a node that already served a scenario would start with a warmer JIT and an
    // older heap than its counterpart.
    await this.stopCompanion();
    await this.stopCurrent();
    let a: NodeProcess;
    let b: NodeProcess;
    if (this.options.databaseUrl) {
      // Side by side from the start (migrations and the first admin key are under advisory locks).
      const [pa, pb] = await Promise.allSettled([this.start(first), this.start(second, first)]);
      if (pa.status === 'rejected' || pb.status === 'rejected') {
        for (const p of [pa, pb]) if (p.status === 'fulfilled') await p.value.stop().catch(() => p.value.kill());
        throw pa.status === 'rejected' ? pa.reason : (pb as PromiseRejectedResult).reason;
      }
      [a, b] = [pa.value, pb.value];
    } else {
      // The second attaches to the embedded Postgres the first starts.
      a = await this.start(first);
      this.current = { config: first, node: a };
      b = await this.start(second, first);
    }
    this.current = { config: first, node: a };
    this.companion = { config: second, node: b };
    const la = this.labelOf(first);
    const lb = this.labelOf(second);
    return [this.active(a, la.label, la.caveat), this.active(b, lb.label, lb.caveat)];
  }

  private active(node: NodeProcess, label: string, caveat: string | undefined): ActiveNode {
    return { url: node.url, pid: node.pid, label, ...(caveat ? { note: caveat } : {}), logTail: () => node.logTail(), alive: () => node.alive() };
  }

  async adminKey(): Promise<string | undefined> {
    if (this.options.key) return this.options.key;
    this.key ??= await obtainAdminKey(this.dataDir, this.env('no-cache'));
    return this.key.key;
  }

  private async stopCurrent(): Promise<void> {
    const running = this.current;
    this.current = undefined;
    if (running) await this.stopNode(running);
  }

  private async stopCompanion(): Promise<void> {
    const running = this.companion;
    this.companion = undefined;
    if (running) await this.stopNode(running);
  }

  private async stopNode(running: Running): Promise<void> {
    const byItself = !running.node.alive();
    const how = await running.node.stop();
    if (byItself || how !== 'code 0') note(`the ${running.config} node (pid ${running.node.pid}) ${byItself ? 'had exited by itself' : 'exited'} (${how}):\n${running.node.logTail()}`);
    if (this.options.profileDir) {
      const files = (await readdir(this.options.profileDir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${running.node.pid}.`));
      for (const file of files) {
        const full = path.resolve(this.options.profileDir, file);
        this.profiles.push(full);
        note(`CPU profile of the ${running.config} node: ${full}`);
      }
    }
  }

  async close(): Promise<void> {
    // The companion first: with an embedded Postgres, `current` owns the cluster.
    await this.stopCompanion().catch((err: unknown) => note(`stopping the node failed: ${(err as Error).message}`));
    await this.stopCurrent().catch((err: unknown) => note(`stopping the node failed: ${(err as Error).message}`));
    if (this.key?.createdId) {
      await revokeAdminKey(this.key.createdId, this.env('no-cache')).catch((err: unknown) => note(`revoking the bench's admin key ${this.key?.createdId} failed: ${(err as Error).message}`));
    }
    if (this.redis.ok) {
      await deleteKeys(this.options.redisUrl, this.redisKeyPrefix)
        .then((n) => note(`deleted ${n} Redis keys under ${this.redisKeyPrefix}`))
        .catch((err: unknown) => note(`deleting Redis keys under ${this.redisKeyPrefix} failed: ${(err as Error).message}`));
    }
    await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
  }

  killNow(): void {
    this.companion?.node.kill();
    this.current?.node.kill();
  }

  describe(): Record<string, unknown> {
    return {
      dataDir: this.dataDir,
      database: this.options.databaseUrl ? 'DATABASE_URL' : 'embedded Postgres in DATA_DIR',
      redisKeyPrefix: this.redisKeyPrefix,
      redis: this.redis,
      nodeStarts: this.starts,
    };
  }
}

export class UrlNode implements NodeSource {
  redis = { ok: true };
  profiles: string[] = [];

  constructor(
    private readonly url: string,
    private readonly key: string | undefined,
  ) {}

  acquire(config: NodeConfigName): Promise<ActiveNode> {
    return Promise.resolve({
      url: this.url,
      pid: undefined,
      label: 'url',
      ...(config !== 'default' ? { note: `meant for the "${config}" node configuration; ran against --url as it is configured` } : {}),
    });
  }

  adminKey(): Promise<string | undefined> {
    return Promise.resolve(this.key);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  killNow(): void {}

  describe(): Record<string, unknown> {
    return { url: this.url };
  }
}
