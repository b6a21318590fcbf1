/**
 * Federation wiring. A secondary node with UPSTREAM_URLS gets the outbox sink, the sender, the
 * heartbeat and recursive resolution; a node with ROLE=top-level gets /federation/v1/ and takeover
 * resolution of the prefixes it homes at other nodes. Background loops start once the server
 * listens (its address is part of the node's registration) and stop when the app closes.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { App } from '../app.js';
import type { Config } from '../config.js';
import type { Logger } from '../infra/logger.js';
import type { ChangeSink } from '../registry/change-sink.js';
import type { UpstreamSource } from '../resolver/service.js';
import type { StatsService } from '../stats/service.js';
import type { TenancyService } from '../tenancy/service.js';
import { registerFederationContext } from './context.js';
import { EscrowSource } from './escrow-source.js';
import { Heartbeat } from './heartbeat.js';
import { HttpPools } from './http-pools.js';
import { loadOrCreateNodeKey } from './node-key.js';
import * as outbox from './outbox-repository.js';
import { outboxSink } from './outbox-sink.js';
import { RemoteSource } from './remote-source.js';
import { OutboxSender } from './sender.js';
import { federationStatusRoutes } from './status-routes.js';
import { topLevelRoutes } from './top-level/routes.js';
import { TopLevelService } from './top-level/service.js';
import { UpstreamClient } from './upstream-client.js';
import type { NodeIdentity } from './wire.js';
import { publicBaseUrl } from '../infra/public-url.js';

export const SOFTWARE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export const upstreamUrls = (config: Config): string[] => (config.UPSTREAM_URLS ? config.UPSTREAM_URLS.split(',').map((u) => u.trim().replace(/\/$/, '')) : []);

/**
 * At a serving start: records whether this node syncs upstream, for commands run beside it
 * (snode import), whose writes must reach the outbox as the node's do; warns when a process
 * without UPSTREAM_URLS turns that off.
 */
export async function recordSyncRole(pool: pg.Pool, config: Config, log: Logger): Promise<void> {
  const syncs = upstreamUrls(config).length > 0;
  if ((await outbox.recordUpstream(pool, syncs)) && !syncs) {
    log.warn('UPSTREAM_URLS is empty, but the node on this database synced upstream until now: this process does not sync, and commands run beside it (snode import) no longer write the outbox. Set UPSTREAM_URLS on every process if the node federates.');
  }
}

/** Whether a command's writes go through the outbox: by its own UPSTREAM_URLS, or by what the serving node recorded at its start. */
export async function writesSyncUpstream(pool: pg.Pool, config: Config): Promise<boolean> {
  return upstreamUrls(config).length > 0 || outbox.servingNodeSyncs(pool);
}

export interface FederationDeps {
  pool: pg.Pool;
  log: Logger;
  tenancy: TenancyService;
  stats: StatsService;
}

export class Federation {
  readonly sinks: ChangeSink[] = [];
  source: UpstreamSource | undefined;
  private readonly pools: HttpPools;
  private topLevel: TopLevelService | undefined;
  private upstream: UpstreamClient | undefined;
  private sender: OutboxSender | undefined;
  private heartbeat: Heartbeat | undefined;
  private app: App | undefined;

  private constructor(
    private readonly config: Config,
    private readonly deps: FederationDeps,
  ) {
    this.pools = new HttpPools({
      connectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: config.UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: config.UPSTREAM_BODY_TIMEOUT_MS,
    });
  }

  /** undefined when the node neither federates upstream nor plays the top-level role. */
  static async create(config: Config, deps: FederationDeps): Promise<Federation | undefined> {
    const urls = upstreamUrls(config);
    if (config.ROLE !== 'top-level' && urls.length === 0) return undefined;
    const federation = new Federation(config, deps);
    if (config.ROLE === 'top-level') {
      federation.topLevel = new TopLevelService(deps.pool, { timestampWindowMs: config.FEDERATION_TIMESTAMP_WINDOW_MS, downAfterMs: config.NODE_DOWN_AFTER_MS }, deps.log);
      federation.source = new EscrowSource(config.NODE_PREFIX, federation.topLevel, federation.pools, config.FEDERATION_MAX_HOPS);
    }
    if (urls.length > 0) {
      const key = await loadOrCreateNodeKey(config, deps.log);
      federation.upstream = new UpstreamClient(federation.pools, {
        urls,
        nodeId: config.NODE_ID,
        key,
        failoverAfter: config.UPSTREAM_FAILOVER_AFTER,
        primaryRetryMs: config.UPSTREAM_PRIMARY_RETRY_MS,
      }, deps.log);
      federation.sinks.push(outboxSink());
      federation.heartbeat = new Heartbeat(deps.pool, federation.upstream, deps.stats, deps.tenancy, () => federation.identity(), config.HEARTBEAT_INTERVAL_MS, deps.log);
      federation.sender = new OutboxSender(deps.pool, federation.upstream, {
        nodeId: config.NODE_ID,
        batchSize: config.SYNC_BATCH_SIZE,
        batchWaitMs: config.SYNC_BATCH_WAIT_MS,
        retryBaseMs: config.SYNC_RETRY_BASE_MS,
        retryMaxMs: config.SYNC_RETRY_MAX_MS,
      }, deps.log, async () => {
        await federation.heartbeat!.register();
      });
      // A top-level node resolves foreign prefixes itself; a secondary asks upstream.
      if (!federation.source) {
        federation.source = new RemoteSource(config.NODE_PREFIX, federation.upstream, federation.pools, { prefixCacheSeconds: config.PREFIX_CACHE_SECONDS, maxHops: config.FEDERATION_MAX_HOPS }, deps.log);
      }
    }
    return federation;
  }

  /** Hooks and routes; call before the module routes so the context covers resolution. */
  async register(app: App): Promise<void> {
    this.app = app;
    registerFederationContext(app);
    if (this.topLevel) await app.register(topLevelRoutes(this.topLevel), { prefix: '/federation/v1' });
    await app.register(federationStatusRoutes(this));
    app.server.once('listening', () => this.start());
    app.addHook('onClose', async () => this.stop());
  }

  identity(): NodeIdentity {
    const address = this.app?.server.address() as AddressInfo | null | undefined;
    return { nodeId: this.config.NODE_ID, nodePrefix: this.config.NODE_PREFIX, baseUrl: publicBaseUrl(this.config, address?.port), version: SOFTWARE_VERSION };
  }

  private start(): void {
    this.topLevel?.startMonitor();
    this.sender?.start();
    this.heartbeat?.start();
  }

  private async stop(): Promise<void> {
    this.topLevel?.stopMonitor();
    await Promise.all([this.sender?.stop(), this.heartbeat?.stop()]);
    await this.pools.close();
  }

  async status() {
    return {
      role: this.config.ROLE,
      nodeId: this.config.NODE_ID,
      nodePrefix: this.config.NODE_PREFIX,
      upstream: this.upstream ? this.upstream.state() : null,
      outbox: this.upstream ? await outbox.backlog(this.deps.pool) : null,
      sender: this.sender?.state() ?? null,
      heartbeat: this.heartbeat?.state() ?? null,
    };
  }

  /** The top-level service (ROLE=top-level), for the admin CLI and tests. */
  get topLevelService(): TopLevelService | undefined {
    return this.topLevel;
  }
}
