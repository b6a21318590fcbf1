/** The background half of statistics: every STATS_FLUSH_MS, fold registration deltas and flush resolution counts. */
import type pg from 'pg';
import type { Logger } from '../infra/logger.js';
import { foldRegistrationDeltas } from './repository.js';
import type { ResolutionCounts } from './resolution-counter.js';

export class StatsWorker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly resolutions: ResolutionCounts | undefined,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** The prefixes enterprises hold: resolution counts of any other go under one row. */
    private readonly knownPrefixes: () => Promise<ReadonlySet<string>>,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** One round now (also what shutdown and tests call); rounds never overlap. */
  tick(): Promise<void> {
    if (!this.running) {
      this.running = this.round().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async round(): Promise<void> {
    await this.resolutions?.flush(this.pool, this.log, this.knownPrefixes);
    try {
      await foldRegistrationDeltas(this.pool);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'registration deltas not folded; will retry');
    }
  }

  /** Stops the timer and flushes what is left. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.resolutions?.stop();
    await this.running;
    await this.round();
  }
}
