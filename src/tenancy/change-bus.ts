/**
 * Tells every process that tenancy changed (a key revoked, a prefix allocated, disabled or
 * enabled), so each drops what it cached about keys and prefixes. Over Redis pub/sub when there is
 * Redis; a process whose subscription was lost clears everything when it is back, since it may
 * have missed messages.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../infra/logger.js';

export interface TenancyChanges {
  /** Clears this process at once and tells the others; never throws. */
  publish(): Promise<void>;
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

export class LocalTenancyChanges implements TenancyChanges {
  protected readonly listeners: Array<() => void> = [];

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  protected fire(): void {
    for (const listener of this.listeners) listener();
  }

  async publish(): Promise<void> {
    this.fire();
  }

  async close(): Promise<void> {}
}

export class RedisTenancyChanges extends LocalTenancyChanges {
  private subscriber: Redis | undefined;
  private readonly channel: string;

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    private readonly log: Logger,
  ) {
    super();
    this.channel = `${keyPrefix}tenancy`;
  }

  async start(): Promise<void> {
    const subscriber = this.redis.duplicate({ lazyConnect: true });
    this.subscriber = subscriber;
    let lost = false;
    subscriber.on('message', (channel: string) => {
      if (channel === this.channel) this.fire();
    });
    subscriber.on('error', () => {
      lost = true;
    });
    // Subscribing again on every (re)connection is harmless and covers a start while Redis was down.
    subscriber.on('ready', () => {
      if (lost) this.fire();
      lost = false;
      subscriber.subscribe(this.channel).catch(() => undefined);
    });
    try {
      await subscriber.connect();
      await subscriber.subscribe(this.channel);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'tenancy change channel not subscribed yet; will keep trying');
    }
  }

  override async publish(): Promise<void> {
    this.fire();
    try {
      await this.redis.publish(this.channel, '1');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'tenancy change not published: other processes see it within KEY_CACHE_MS');
    }
  }

  override async close(): Promise<void> {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }
}
