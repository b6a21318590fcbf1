/**
 * Resolution on the top-level node of prefixes homed at secondary nodes: from the home node while
 * it is up, from the escrow copy while it is down (emergency takeover, marked X-Snode-Takeover and
 * never cached, so it ends the moment the node is up again).
 */
import { isPrefixUnder, type Handle } from '../handle/handle.js';
import { AppError } from '../infra/errors.js';
import type { ResolutionContext, UpstreamSource } from '../resolver/service.js';
import { markTakeover, nextHops } from './context.js';
import type { HttpPools } from './http-pools.js';
import { fetchRecord } from './record-fetch.js';
import type { TopLevelService } from './top-level/service.js';

export class EscrowSource implements UpstreamSource {
  constructor(
    private readonly nodePrefix: string,
    private readonly service: TopLevelService,
    private readonly pools: HttpPools,
    private readonly maxHops: number,
  ) {}

  isForeign(prefix: string): boolean {
    return !isPrefixUnder(prefix, this.nodePrefix);
  }

  async find(handle: Handle, context?: ResolutionContext) {
    const hops = nextHops(context, this.maxHops);
    const home = await this.service.home(handle.prefix);
    if (!home) return { record: undefined };
    if (home.state !== 'up' || !home.node.baseUrl) {
      markTakeover(context, home.node.nodeId);
      const held = await this.service.escrowRecord(home.node.nodeId, handle.prefix, handle.suffix);
      return { record: held ? { handle: handle.handle, version: held.version, values: held.values } : undefined, maxTtlSeconds: 0 };
    }
    try {
      const fetched = await fetchRecord(this.pools, home.node.baseUrl, handle, hops);
      return { record: fetched.record };
    } catch (err) {
      throw new AppError('OWNER_UNREACHABLE', `node ${home.node.nodeId}, home of ${handle.prefix}, did not answer: ${(err as Error).message}`, 504, 2);
    }
  }
}
