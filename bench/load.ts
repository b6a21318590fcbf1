/** One autocannon run over a request plan: by time (a measurement) or by count (a warm pass). */
import autocannon from 'autocannon';
import { LatencyHistogram, type Percentiles } from './histogram.js';
import type { RequestPlan } from './scenarios.js';

export interface LoadSpec {
  baseUrl: string;
  plan: RequestPlan;
  connections: number;
  /** Seconds; or */
  duration?: number;
  /** exactly this many requests. */
  amount?: number;
  /** Where the rotation starts (a measurement continues after its warm-up). */
  offset?: number;
  onSecond?: (elapsedS: number, reqPerSec: number, responses: number) => void;
  signal?: AbortSignal;
  /** Record latencies here too, to add up several runs (the slices of a pair). */
  histogram?: LatencyHistogram;
}

export interface LoadResult {
  /** Responses received. */
  requests: number;
  /** Mean of the per-second response counts (what autocannon reports as Req/Sec). */
  reqPerSec: number;
  durationS: number;
  latency: Percentiles;
  /** Responses by HTTP status. */
  statuses: Record<string, number>;
  /** Connection errors, timeouts included. */
  connErrors: number;
  timeouts: number;
  /** Connection errors by code or message (ECONNRESET, "request timed out", ...). */
  errorKinds: Record<string, number>;
  /** Index the rotation reached (the next run can start there). */
  next: number;
}

export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const { plan } = spec;
  let i = spec.offset ?? 0;
  const histogram = new LatencyHistogram();
  let responses = 0;
  let lastCount = 0;
  const errorKinds: Record<string, number> = {};
  const started = Date.now();

  return new Promise((resolve, reject) => {
    if (spec.signal?.aborted) {
      reject(new Error('aborted'));
      return;
    }
    const instance = autocannon(
      {
        url: spec.baseUrl,
        connections: spec.connections,
        pipelining: 1,
        timeout: 10,
        ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: spec.duration ?? 10 }),
        method: plan.method,
        headers: plan.headers,
        requests: [
          {
            // Called for every request sent; one counter for all connections, so every request in
            // flight asks for a different identifier.
            setupRequest: (request) => {
              const next = plan.at(i++);
              request.path = next.path;
              if (next.body !== undefined) request.body = next.body;
              return request;
            },
          },
        ],
      },
      (err: unknown, result: autocannon.Result) => {
        clearInterval(ticker);
        spec.signal?.removeEventListener('abort', abort);
        if (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (spec.signal?.aborted) {
          reject(new Error('aborted'));
          return;
        }
        const statuses: Record<string, number> = {};
        for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = stat.count ?? 0;
        resolve({
          requests: histogram.total,
          reqPerSec: Math.round(result.requests.average),
          durationS: result.duration,
          latency: histogram.percentiles(),
          statuses,
          connErrors: result.errors,
          timeouts: result.timeouts,
          errorKinds,
          next: i,
        });
      },
    );
    instance.on('reqError', (err: unknown) => {
      const e = err as { code?: unknown; message?: unknown };
      const kind = typeof e?.code === 'string' ? e.code : typeof e?.message === 'string' ? e.message : String(err);
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    });
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      responses += 1;
      histogram.record(responseTime);
      spec.histogram?.record(responseTime);
    });
    const ticker = setInterval(() => {
      spec.onSecond?.(Math.round((Date.now() - started) / 1000), responses - lastCount, responses);
      lastCount = responses;
    }, 1000);
    const abort = () => instance.stop();
    spec.signal?.addEventListener('abort', abort, { once: true });
  });
}
