/**
 * Latency histogram at 10 µs resolution. autocannon's own histogram keeps whole milliseconds, too
 * coarse for a p99 of one or two milliseconds that the targets compare against the ceiling's.
 */
const RESOLUTION_MS = 0.01;
const MAX_MS = 10_000;

export interface Percentiles {
  p50: number;
  p97_5: number;
  p99: number;
  mean: number;
  max: number;
}

export class LatencyHistogram {
  private readonly buckets = new Uint32Array(Math.ceil(MAX_MS / RESOLUTION_MS) + 1);
  private count = 0;
  private sum = 0;
  private maxSeen = 0;

  record(ms: number): void {
    const bucket = Math.min(this.buckets.length - 1, Math.max(0, Math.round(ms / RESOLUTION_MS)));
    this.buckets[bucket]! += 1;
    this.count += 1;
    this.sum += ms;
    if (ms > this.maxSeen) this.maxSeen = ms;
  }

  get total(): number {
    return this.count;
  }

  percentiles(): Percentiles {
    const wanted = [0.5, 0.975, 0.99];
    const found: number[] = [];
    let seen = 0;
    for (let i = 0; i < this.buckets.length && found.length < wanted.length; i++) {
      seen += this.buckets[i]!;
      while (found.length < wanted.length && seen >= Math.ceil(wanted[found.length]! * this.count) && this.count > 0) {
        found.push(round(i * RESOLUTION_MS));
      }
    }
    return {
      p50: found[0] ?? 0,
      p97_5: found[1] ?? 0,
      p99: found[2] ?? 0,
      mean: this.count ? round(this.sum / this.count) : 0,
      max: round(this.maxSeen),
    };
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
