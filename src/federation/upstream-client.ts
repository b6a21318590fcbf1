/**
 * Signed protobuf requests to the top-level node, with failover over UPSTREAM_URLS: after
 * UPSTREAM_FAILOVER_AFTER consecutive failures of the current endpoint, requests move to the next;
 * while on a later endpoint the first is tried again every UPSTREAM_PRIMARY_RETRY_MS, and the
 * client returns to it as soon as it answers.
 */
import type { Logger } from '../infra/logger.js';
import type { HttpAnswer, HttpPools } from './http-pools.js';
import { signRequest, type NodeKey } from './signing.js';
import { PROTOBUF_TYPE } from './wire.js';

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    message: string,
    /** The HTTP status when the upstream answered; undefined for network errors and timeouts. */
    readonly status?: number,
    readonly code?: string,
    readonly answer?: HttpAnswer,
  ) {
    super(message);
  }
}

export interface UpstreamState {
  urls: string[];
  current: string;
  currentIndex: number;
  consecutiveFailures: number;
  lastError: string | null;
  lastSuccessAt: string | null;
  failovers: number;
}

export interface UpstreamOptions {
  urls: string[];
  nodeId: string;
  key: NodeKey;
  failoverAfter: number;
  primaryRetryMs: number;
}

/** A server-side failure (5xx) counts against the endpoint like a network error; 4xx does not. */
const endpointFailed = (err: unknown): boolean => !(err instanceof UpstreamError) || err.status === undefined || err.status >= 500;

export class UpstreamClient {
  private index = 0;
  private failures = 0;
  private nextPrimaryProbe = 0;
  private lastError: string | null = null;
  private lastSuccessAt: Date | null = null;
  private failovers = 0;

  constructor(
    private readonly pools: HttpPools,
    private readonly options: UpstreamOptions,
    private readonly log: Logger,
  ) {}

  state(): UpstreamState {
    return {
      urls: this.options.urls,
      current: this.options.urls[this.index]!,
      currentIndex: this.index,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      lastSuccessAt: this.lastSuccessAt?.toISOString() ?? null,
      failovers: this.failovers,
    };
  }

  /** A signed request to the current endpoint; 2xx answers resolve, anything else throws UpstreamError. */
  async call(method: 'GET' | 'POST', path: string, body?: Buffer, extraHeaders: Record<string, string> = {}): Promise<HttpAnswer> {
    if (this.index !== 0 && Date.now() >= this.nextPrimaryProbe) {
      this.nextPrimaryProbe = Date.now() + this.options.primaryRetryMs;
      try {
        const answer = await this.once(0, method, path, body, extraHeaders);
        this.log.info({ upstream: this.options.urls[0], from: this.options.urls[this.index] }, 'federation: the first upstream answers again; returning to it');
        this.index = 0;
        this.failures = 0;
        this.succeeded();
        return answer;
      } catch (err) {
        if (!endpointFailed(err)) throw err;
        // Still down: carry on with the current endpoint.
      }
    }
    const at = this.index;
    try {
      const answer = await this.once(at, method, path, body, extraHeaders);
      this.failures = 0;
      this.succeeded();
      return answer;
    } catch (err) {
      this.lastError = (err as Error).message;
      if (endpointFailed(err) && at === this.index) {
        this.failures += 1;
        if (this.failures >= this.options.failoverAfter && this.options.urls.length > 1) {
          const next = (this.index + 1) % this.options.urls.length;
          this.log.warn({ from: this.options.urls[this.index], to: this.options.urls[next], failures: this.failures, err: this.lastError }, 'federation: upstream failing; moving to the next endpoint');
          this.index = next;
          this.failures = 0;
          this.failovers += 1;
          this.nextPrimaryProbe = Date.now() + this.options.primaryRetryMs;
        }
      }
      throw err;
    }
  }

  private succeeded(): void {
    this.lastSuccessAt = new Date();
    this.lastError = null;
  }

  private async once(index: number, method: 'GET' | 'POST', path: string, body: Buffer | undefined, extraHeaders: Record<string, string>): Promise<HttpAnswer> {
    const base = this.options.urls[index]!;
    const signedPath = `${new URL(base).pathname.replace(/\/$/, '')}${path}`;
    const headers: Record<string, string> = {
      ...extraHeaders,
      ...signRequest(this.options.key, this.options.nodeId, method, signedPath, body),
      accept: PROTOBUF_TYPE,
    };
    if (body) headers['content-type'] = PROTOBUF_TYPE;
    let answer: HttpAnswer;
    try {
      answer = await this.pools.request(base, method, path, headers, body);
    } catch (err) {
      throw new UpstreamError(`${base}: ${(err as Error).message}`);
    }
    if (answer.status >= 200 && answer.status < 300) return answer;
    let code: string | undefined;
    let message = answer.body.toString('utf8').slice(0, 300);
    try {
      const parsed = JSON.parse(answer.body.toString('utf8')) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code;
      message = parsed.error?.message ?? message;
    } catch {
      // not JSON (a protobuf SyncAck on 409)
    }
    throw new UpstreamError(`${base}${path} answered ${answer.status}${code ? ` ${code}` : ''}: ${message}`, answer.status, code, answer);
  }
}
