/**
 * Recursive resolution on a secondary node: a handle whose prefix is homed elsewhere is fetched
 * from its home node, found through the top-level node (cached PREFIX_CACHE_SECONDS). When the home
 * node does not answer, or the top-level node reports it down, the top-level node is asked
 * instead: it answers from its escrow copy while the node is down. Nothing answering: 504.
 */
import { isPrefixUnder, type Handle } from '../handle/handle.js';
import { AppError } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import type { ResolutionContext, UpstreamSource } from '../resolver/service.js';
import { markTakeover, nextHops } from './context.js';
import type { HttpPools } from './http-pools.js';
import { fetchRecord, type Fetched } from './record-fetch.js';
import { UpstreamError, type UpstreamClient } from './upstream-client.js';
import { decode, type PrefixLookupAnswer } from './wire.js';

const unreachable = (message: string) => new AppError('OWNER_UNREACHABLE', message, 504, 2);

export class RemoteSource implements UpstreamSource {
  private readonly homes = new Map<string, { answer: PrefixLookupAnswer | undefined; expiresAt: number }>();
  private readonly lookups = new Map<string, Promise<PrefixLookupAnswer | undefined>>();

  constructor(
    private readonly nodePrefix: string,
    private readonly upstream: UpstreamClient,
    private readonly pools: HttpPools,
    private readonly options: { prefixCacheSeconds: number; maxHops: number },
    private readonly log: Logger,
  ) {}

  isForeign(prefix: string): boolean {
    return !isPrefixUnder(prefix, this.nodePrefix);
  }

  async find(handle: Handle, context?: ResolutionContext): Promise<{ record: Fetched['record']; maxTtlSeconds?: number }> {
    const hops = nextHops(context, this.options.maxHops);
    let home: PrefixLookupAnswer | undefined;
    try {
      home = await this.home(handle.prefix);
    } catch (err) {
      throw unreachable(`cannot find where prefix ${handle.prefix} is homed: the top-level node did not answer (${(err as Error).message})`);
    }
    if (!home) return { record: undefined };
    if (home.state === 'up' && home.node.baseUrl) {
      try {
        return this.answer(await fetchRecord(this.pools, home.node.baseUrl, handle, hops), context);
      } catch (err) {
        this.log.warn({ handle: handle.handle, node: home.node.nodeId, err: (err as Error).message }, 'federation: home node did not answer; asking the top-level node');
        this.homes.delete(handle.prefix);
      }
    }
    try {
      return this.answer(await fetchRecord(this.pools, this.upstream.state().current, handle, hops), context);
    } catch (err) {
      throw unreachable(`neither node ${home.node.nodeId} nor the top-level node answered for ${handle.handle}: ${(err as Error).message}`);
    }
  }

  private answer(fetched: Fetched, context: ResolutionContext | undefined): { record: Fetched['record']; maxTtlSeconds?: number } {
    if (fetched.takeover) {
      markTakeover(context, fetched.takeover);
      // An escrow answer stands in for a node that is down: not kept once the node is back.
      return { record: fetched.record, maxTtlSeconds: 0 };
    }
    return { record: fetched.record };
  }

  private async home(prefix: string): Promise<PrefixLookupAnswer | undefined> {
    const cached = this.homes.get(prefix);
    if (cached && cached.expiresAt > Date.now()) return cached.answer;
    let running = this.lookups.get(prefix);
    if (!running) {
      running = this.lookup(prefix).finally(() => this.lookups.delete(prefix));
      this.lookups.set(prefix, running);
    }
    return running;
  }

  private async lookup(prefix: string): Promise<PrefixLookupAnswer | undefined> {
    let answer: PrefixLookupAnswer | undefined;
    try {
      answer = decode('PrefixLookupAnswer', (await this.upstream.call('GET', `/federation/v1/prefixes/${prefix}`)).body);
    } catch (err) {
      if (!(err instanceof UpstreamError && err.status === 404)) throw err;
    }
    if (this.options.prefixCacheSeconds > 0) {
      if (this.homes.size > 10_000) this.homes.clear();
      this.homes.set(prefix, { answer, expiresAt: Date.now() + this.options.prefixCacheSeconds * 1000 });
    }
    return answer;
  }
}
