/**
 * Streams the outbox to the top-level node in signed SyncBatches. Exactly one sender runs per
 * database: the one whose session holds the advisory lock (another process takes over when that
 * session ends). It resumes from the acked sequence, which is stored, after any restart.
 */
import type pg from 'pg';
import { withTransaction } from '../infra/postgres.js';
import type { Logger } from '../infra/logger.js';
import * as outbox from './outbox-repository.js';
import { backoff, Sleeper } from './sleeper.js';
import { UpstreamError, type UpstreamClient } from './upstream-client.js';
import { decode, encode, type SyncEvent } from './wire.js';

/** The session advisory lock the sender of a database holds (resync takes it to realign the stream with no sender running). */
export const SENDER_LOCK = 7_340_104;
const STANDBY_RETRY_MS = 2000;
/**
 * Most bytes of records a SyncBatch carries (the top-level node takes bodies up to 64 MiB). A
 * batch is cut by its count and by this: records may be large (hundreds of values of up to 32 KiB
 * each), and a batch over the top-level's limit would be refused again at every retry, stopping
 * the stream behind it.
 */
export const SYNC_BATCH_MAX_BYTES = 16 * 1024 * 1024;
/** What an event costs in a batch beyond its values: the handle, numbers and framing, generously. */
const EVENT_OVERHEAD_BYTES = 1024;

/** The longest head of `events` within `maxBytes` (at least one event: a single one always fits the top-level's limit). */
export function withinBytes(events: SyncEvent[], maxBytes: number): SyncEvent[] {
  let bytes = 0;
  for (let i = 0; i < events.length; i += 1) {
    const e = events[i]!;
    bytes += EVENT_OVERHEAD_BYTES + Buffer.byteLength(e.valuesJson) + e.prefix.length + e.suffix.length;
    if (bytes > maxBytes && i > 0) return events.slice(0, i);
  }
  return events;
}

export interface SenderOptions {
  nodeId: string;
  batchSize: number;
  batchWaitMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface SenderState {
  leader: boolean;
  ackedSeq: number;
  sentBatches: number;
  sentEvents: number;
  consecutiveFailures: number;
  lastError: string | null;
}

export class OutboxSender {
  private readonly sleeper = new Sleeper();
  private lockClient: pg.PoolClient | undefined;
  private loop: Promise<void> | undefined;
  private acked = 0;
  private sentBatches = 0;
  private sentEvents = 0;
  private failures = 0;
  private lastError: string | null = null;
  private readonly pollMs: number;

  constructor(
    private readonly pool: pg.Pool,
    private readonly upstream: UpstreamClient,
    private readonly options: SenderOptions,
    private readonly log: Logger,
    /** Runs before the first batch and after each failure that may mean the upstream forgot us. */
    private readonly beforeSync: () => Promise<void>,
  ) {
    this.pollMs = Math.min(1000, Math.max(50, options.batchWaitMs));
  }

  start(): void {
    this.loop = this.run().catch((err: unknown) => this.log.error({ err }, 'federation sender stopped unexpectedly'));
  }

  state(): SenderState {
    return {
      leader: this.lockClient !== undefined,
      ackedSeq: this.acked,
      sentBatches: this.sentBatches,
      sentEvents: this.sentEvents,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
    };
  }

  /** Wakes the loop now (a write just committed, or a test wants no wait). */
  poke(): void {
    this.sleeper.poke();
  }

  async stop(): Promise<void> {
    this.sleeper.stop();
    await this.loop;
    await this.releaseLock();
  }

  private async acquireLock(): Promise<boolean> {
    if (this.lockClient) return true;
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [SENDER_LOCK]);
      if (rows[0]!.ok) {
        // A lost session drops the lock server-side; forget the client so the loop re-acquires.
        client.on('error', () => {
          if (this.lockClient === client) this.lockClient = undefined;
        });
        this.lockClient = client;
        this.acked = (await outbox.readState(this.pool)).ackedSeq;
        this.log.info({ ackedSeq: this.acked }, 'federation: this process is the sender for its database');
        return true;
      }
      client.release();
      return false;
    } catch (err) {
      client.release(true);
      throw err;
    }
  }

  private async releaseLock(): Promise<void> {
    const client = this.lockClient;
    this.lockClient = undefined;
    if (!client) return;
    await client.query('SELECT pg_advisory_unlock($1)', [SENDER_LOCK]).catch(() => undefined);
    client.release();
  }

  private async run(): Promise<void> {
    let registered = false;
    while (!this.sleeper.stopped) {
      try {
        if (!(await this.acquireLock())) {
          await this.sleeper.sleep(STANDBY_RETRY_MS);
          continue;
        }
        if (!registered) {
          await this.beforeSync();
          registered = true;
        }
        const events = await this.nextBatch();
        if (events === undefined) {
          await this.sleeper.sleep(this.pollMs);
          continue;
        }
        await this.send(events);
        this.failures = 0;
        this.lastError = null;
      } catch (err) {
        if (this.sleeper.stopped) break;
        this.failures += 1;
        this.lastError = (err as Error).message;
        if (err instanceof UpstreamError && err.code === 'UNKNOWN_NODE') registered = false;
        const delay = backoff(this.failures, this.options.retryBaseMs, this.options.retryMaxMs);
        this.log.warn({ err: this.lastError, failures: this.failures, retryInMs: Math.round(delay) }, 'federation: sync failed; retrying');
        await this.sleeper.sleep(delay);
      }
    }
  }

  /** A full batch, or a partial one whose oldest change has waited SYNC_BATCH_WAIT_MS; else undefined. */
  private async nextBatch(): Promise<SyncEvent[] | undefined> {
    const size = this.options.batchSize;
    let events = await outbox.readBatch(this.pool, this.acked, size);
    if (events.length < size) {
      const numbered = await withTransaction(this.pool, (tx) => outbox.numberPending(tx, size - events.length));
      if (numbered > 0) events = await outbox.readBatch(this.pool, this.acked, size);
    }
    if (events.length === 0) return undefined;
    const fitting = withinBytes(events, SYNC_BATCH_MAX_BYTES);
    if (fitting.length < events.length) return fitting; // full by its bytes: no reason to wait
    if (events.length < size && this.options.batchWaitMs > 0) {
      const waited = (await outbox.oldestWaitingMs(this.pool)) ?? 0;
      if (waited < this.options.batchWaitMs) return undefined;
    }
    return events;
  }

  private async send(events: SyncEvent[]): Promise<void> {
    const firstSeq = events[0]!.seq;
    const lastSeq = events[events.length - 1]!.seq;
    const body = encode('SyncBatch', { nodeId: this.options.nodeId, firstSeq, lastSeq, events });
    let ackedSeq: number;
    try {
      const answer = await this.upstream.call('POST', '/federation/v1/sync', body);
      ackedSeq = decode('SyncAck', answer.body).ackedSeq;
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 409 && err.answer) {
        // The top-level node holds a different acked sequence than ours.
        const theirs = decode('SyncAck', err.answer.body).ackedSeq;
        if (theirs > this.acked) {
          await this.acknowledge(theirs);
          return;
        }
        throw new UpstreamError(
          `the top-level node has acked only up to ${theirs}, but changes up to ${this.acked} were acked and dropped here: stop this node (every process on its database), run "snode federation resync", then start it`,
          409,
          'SEQUENCE_GAP',
        );
      }
      throw err;
    }
    this.sentBatches += 1;
    this.sentEvents += events.length;
    await this.acknowledge(Math.min(ackedSeq, lastSeq));
  }

  private async acknowledge(ackedSeq: number): Promise<void> {
    if (ackedSeq <= this.acked) return;
    await outbox.recordAck(this.pool, ackedSeq);
    this.acked = ackedSeq;
  }
}
