/**
 * Operation monitoring, the node's side: every HEARTBEAT_INTERVAL_MS a signed NodeStatus with the
 * node's figures, backlog and version; and prefix registration (at start, then every few minutes,
 * so allocations made since reach the top-level node).
 */
import type pg from 'pg';
import type { Logger } from '../infra/logger.js';
import type { StatsService } from '../stats/service.js';
import type { TenancyService } from '../tenancy/service.js';
import type { Actor } from '../tenancy/actor.js';
import * as outbox from './outbox-repository.js';
import { Sleeper } from './sleeper.js';
import type { UpstreamClient } from './upstream-client.js';
import { decode, encode, type NodeIdentity } from './wire.js';

const SYSTEM: Actor = { kind: 'key', keyId: 'federation', role: 'admin', enterpriseId: null, prefixes: [] };
const REGISTER_EVERY_MS = 300_000;

export class Heartbeat {
  private readonly sleeper = new Sleeper();
  private loop: Promise<void> | undefined;
  private lastSentAt: Date | null = null;
  private lastError: string | null = null;
  private registeredAt = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly upstream: UpstreamClient,
    private readonly stats: StatsService,
    private readonly tenancy: TenancyService,
    private readonly identity: () => NodeIdentity,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  state(): { lastSentAt: string | null; lastError: string | null } {
    return { lastSentAt: this.lastSentAt?.toISOString() ?? null, lastError: this.lastError };
  }

  async stop(): Promise<void> {
    this.sleeper.stop();
    await this.loop;
  }

  /** Registers the node prefix's enterprise prefixes and the base URL with the top-level node. */
  async register(): Promise<string[]> {
    const prefixes = (await this.tenancy.listPrefixes()).filter((p) => p.state === 'active').map((p) => p.prefix);
    const body = encode('PrefixRegistration', { node: this.identity(), prefixes });
    const answer = await this.upstream.call('POST', '/federation/v1/prefixes', body);
    this.registeredAt = Date.now();
    const homed = decode('PrefixRegistrationAck', answer.body).prefixes;
    this.log.info({ prefixes: homed }, 'federation: prefixes registered with the top-level node');
    return homed;
  }

  async beat(): Promise<void> {
    const [overview, backlog] = await Promise.all([this.stats.overview(SYSTEM), outbox.backlog(this.pool)]);
    const identity = this.identity();
    const reg = overview.registrations.today;
    const body = encode('NodeStatus', {
      nodeId: identity.nodeId,
      version: identity.version,
      sentAt: new Date().toISOString(),
      identifiers: Math.max(0, overview.identifiers),
      registrationsToday: reg.creates + reg.updates + reg.deletes,
      resolutionsToday: overview.resolutions.today.total,
      outboxBacklog: backlog.backlog,
      oldestUnsentAgeS: backlog.oldestUnsentAgeS,
      ackedSeq: backlog.ackedSeq,
    });
    await this.upstream.call('POST', '/federation/v1/heartbeat', body);
    this.lastSentAt = new Date();
  }

  private async run(): Promise<void> {
    while (!this.sleeper.stopped) {
      try {
        if (Date.now() - this.registeredAt >= REGISTER_EVERY_MS) await this.register();
        await this.beat();
        this.lastError = null;
      } catch (err) {
        if (this.lastError === null) this.log.warn({ err: (err as Error).message }, 'federation: heartbeat failed');
        this.lastError = (err as Error).message;
        this.registeredAt = 0;
      }
      await this.sleeper.sleep(this.intervalMs);
    }
  }
}
