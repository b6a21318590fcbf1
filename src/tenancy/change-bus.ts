/**
 * Tells every process that tenancy changed (a key revoked, a prefix allocated, disabled or
 * enabled), so each drops what it cached about keys and prefixes; and, on the same channel with
 * the topic as payload, that a metadata template changed or was first used (registry/templates*).
 * Over Postgres LISTEN/NOTIFY: every process already shares the database (with or without Redis,
 * the command line included), and a notification is only delivered once the change committed. A
 * listener whose connection was lost fires every topic when it is back, since it may have missed
 * notifications.
 */
import pg from 'pg';
import type { Logger } from '../infra/logger.js';

const CHANNEL = 'snode_tenancy';
const RECONNECT_MS = 1000;

/** What changed: keys and prefixes (no payload, as before topics existed), or templates. */
export type ChangeTopic = 'tenancy' | 'templates';
const TOPICS: readonly ChangeTopic[] = ['tenancy', 'templates'];

export interface TenancyChanges {
  /** Clears this process at once and tells the others (after the change committed); never throws. */
  publish(topic?: ChangeTopic): Promise<void>;
  onChange(listener: () => void, topic?: ChangeTopic): void;
  close(): Promise<void>;
}

export class LocalTenancyChanges implements TenancyChanges {
  protected readonly listeners: Array<{ topic: ChangeTopic; listener: () => void }> = [];

  onChange(listener: () => void, topic: ChangeTopic = 'tenancy'): void {
    this.listeners.push({ topic, listener });
  }

  protected fire(topic: ChangeTopic): void {
    for (const entry of this.listeners) if (entry.topic === topic) entry.listener();
  }

  async publish(topic: ChangeTopic = 'tenancy'): Promise<void> {
    this.fire(topic);
  }

  async close(): Promise<void> {}
}

export class PgTenancyChanges extends LocalTenancyChanges {
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  /**
   * Backends this process has sent NOTIFY from. Its own notifications come back to its LISTEN
   * connection too, some milliseconds after publish() already fired them here: heard again, they
   * dropped caches a second time, after the next request had filled them.
   */
  private readonly ownBackends = new Set<number>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
  ) {
    super();
    pool.on('remove', (client) => this.ownBackends.delete(backendOf(client)));
  }

  /** Starts listening (a dedicated connection); keeps retrying in the background if Postgres is away. */
  async start(): Promise<void> {
    await this.listen(false);
  }

  private async listen(missed: boolean): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(this.pool.options);
    client.on('notification', (message) => {
      if (message.channel !== CHANNEL || this.ownBackends.has(message.processId)) return;
      // No payload is the tenancy topic (what processes of earlier versions send).
      this.fire(message.payload === 'templates' ? 'templates' : 'tenancy');
    });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.client = client;
      if (missed) for (const topic of TOPICS) this.fire(topic);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'tenancy change listener not connected; retrying (key cache entries still expire after KEY_CACHE_MS)');
      client.end().catch(() => undefined);
      this.schedule();
    }
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.listen(true);
    }, RECONNECT_MS);
    this.retry.unref();
  }

  override async publish(topic: ChangeTopic = 'tenancy'): Promise<void> {
    this.fire(topic);
    try {
      const client = await this.pool.connect();
      this.ownBackends.add(backendOf(client));
      try {
        await client.query(topic === 'tenancy' ? `NOTIFY ${CHANNEL}` : `NOTIFY ${CHANNEL}, '${topic}'`);
        client.release();
      } catch (err) {
        client.release(err as Error); // a connection that failed is dropped, not reused
        throw err;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message, topic }, topic === 'tenancy'
        ? 'tenancy change not announced: other processes see it within KEY_CACHE_MS'
        : 'template change not announced: other processes notice it when they next write with it (or within a few seconds for a new version)');
    }
  }

  override async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

/** The Postgres backend a pooled connection talks to (pg sets it at connect; not in its types). */
function backendOf(client: pg.PoolClient): number {
  return (client as unknown as { processID: number }).processID;
}
