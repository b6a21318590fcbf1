/** undici keep-alive pools by origin, with the configured connect, header and body timeouts. */
import { Pool } from 'undici';

export interface PoolTimeouts {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class HttpPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly timeouts: PoolTimeouts) {}

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: 8,
        connectTimeout: this.timeouts.connectTimeoutMs,
        headersTimeout: this.timeouts.headersTimeoutMs,
        bodyTimeout: this.timeouts.bodyTimeoutMs,
        keepAliveTimeout: 4000,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** One request; network errors and timeouts throw, any HTTP answer resolves. */
  async request(baseUrl: string, method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: Buffer): Promise<HttpAnswer> {
    const url = new URL(baseUrl);
    const fullPath = `${url.pathname.replace(/\/$/, '')}${path}`;
    const answer = await this.pool(url.origin).request({ method, path: fullPath, headers, body });
    const bytes = Buffer.from(await answer.body.arrayBuffer());
    return { status: answer.statusCode, headers: answer.headers, body: bytes };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => p.destroy())));
    this.pools.clear();
  }
}
