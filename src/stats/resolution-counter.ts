/**
 * Resolutions counted in the process (a few map operations per resolve, no I/O) and flushed to
 * Postgres every STATS_FLUSH_MS; a crash loses at most the counts since the last flush.
 */
import type pg from 'pg';
import type { Logger } from '../infra/logger.js';
import { dayIn, type Day } from './periods.js';
import type { ResolutionCounter } from '../resolver/service.js';
import { addResolutionCounts, type Counts, type DeltaRow } from './repository.js';

export class ResolutionCounts implements ResolutionCounter {
  /** day -> prefix -> [found, notFound, cached] */
  private counts = new Map<Day, Map<string, Counts>>();
  private day: Day;
  private current: Map<string, Counts>;
  private readonly clock: NodeJS.Timeout;

  constructor(private readonly timeZone: string) {
    this.day = dayIn(timeZone);
    this.current = new Map();
    this.counts.set(this.day, this.current);
    // The day moves on a timer, not per resolve: counting is two map operations and an add.
    this.clock = setInterval(() => this.turnDay(), 1000);
    this.clock.unref();
  }

  private turnDay(): void {
    const day = dayIn(this.timeZone);
    if (day === this.day) return;
    this.day = day;
    this.current = this.counts.get(day) ?? new Map();
    this.counts.set(day, this.current);
  }

  count(prefix: string, found: boolean, cached: boolean): void {
    const c = this.countsOf(prefix);
    if (found) c[0] += 1;
    else c[1] += 1;
    if (cached) c[2] += 1;
  }

  countHits(prefix: string, found: number, notFound: number): void {
    const c = this.countsOf(prefix);
    c[0] += found;
    c[1] += notFound;
    c[2] += found + notFound;
  }

  private countsOf(prefix: string): Counts {
    let c = this.current.get(prefix);
    if (!c) {
      c = [0, 0, 0];
      this.current.set(prefix, c);
    }
    return c;
  }

  stop(): void {
    clearInterval(this.clock);
  }

  /** Takes everything counted so far, leaving the counter empty. */
  drain(): DeltaRow[] {
    const taken = this.counts;
    this.current = new Map();
    this.counts = new Map([[this.day, this.current]]);
    const rows: DeltaRow[] = [];
    for (const [day, byPrefix] of taken) for (const [prefix, counts] of byPrefix) rows.push({ prefix, day, counts });
    return rows;
  }

  /** Puts rows back after a failed flush, to go out with the next one. */
  restore(rows: readonly DeltaRow[]): void {
    for (const row of rows) {
      let byPrefix = this.counts.get(row.day);
      if (!byPrefix) {
        byPrefix = new Map();
        this.counts.set(row.day, byPrefix);
      }
      const c = byPrefix.get(row.prefix) ?? [0, 0, 0];
      byPrefix.set(row.prefix, [c[0] + row.counts[0], c[1] + row.counts[1], c[2] + row.counts[2]]);
      if (row.day === this.day) this.current = byPrefix;
    }
  }

  /**
   * Writes what was counted. Counts under a prefix no enterprise holds (a made-up one in an
   * anonymous request, say, or another node's) go under OTHER_PREFIXES: anyone may resolve any
   * string, and a row per prefix they invent would grow the statistics without bound. The node's
   * totals are the same either way.
   */
  async flush(pool: pg.Pool, log: Logger, knownPrefixes: () => Promise<ReadonlySet<string>>): Promise<void> {
    const rows = this.drain();
    if (rows.length === 0) return;
    try {
      await addResolutionCounts(pool, foldUnknown(rows, await knownPrefixes()));
    } catch (err) {
      this.restore(rows);
      log.warn({ err: (err as Error).message }, 'resolution counts not flushed; will retry');
    }
  }
}

/** Where resolutions of prefixes no enterprise holds are counted (never a real prefix: "~" is not in one). */
const OTHER_PREFIXES = '~other';

function foldUnknown(rows: readonly DeltaRow[], known: ReadonlySet<string>): DeltaRow[] {
  const out: DeltaRow[] = [];
  const other = new Map<string, DeltaRow>();
  for (const row of rows) {
    if (known.has(row.prefix)) {
      out.push(row);
      continue;
    }
    const into = other.get(row.day);
    if (into) into.counts = [into.counts[0] + row.counts[0], into.counts[1] + row.counts[1], into.counts[2] + row.counts[2]];
    else other.set(row.day, { prefix: OTHER_PREFIXES, day: row.day, counts: [...row.counts] });
  }
  return [...out, ...other.values()];
}
