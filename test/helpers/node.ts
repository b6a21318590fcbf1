/** Starts a real node (real Postgres database, real Redis or in-process cache) on a free port. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/infra/logger.js';
import type { ChangeSink } from '../../src/registry/change-sink.js';
import { startNode, type RunningNode } from '../../src/server.js';
import { TEST_REDIS_URL } from './env.js';

export interface TestNodeOptions {
  databaseUrl: string;
  /** true: the machine's Redis under a fresh key prefix; a string: that Redis URL; false: in-process cache. */
  redis?: boolean | string;
  redisKeyPrefix?: string;
  dataDir?: string;
  env?: Record<string, string>;
  sinks?: ChangeSink[];
}

export interface TestNode {
  url: string;
  config: Config;
  adminKey: string;
  node: RunningNode;
  close(): Promise<void>;
}

export const newRedisPrefix = (): string => `snode-test:${randomBytes(5).toString('hex')}:`;

export async function startTestNode(options: TestNodeOptions): Promise<TestNode> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'snode-test-')));
  const redisUrl = options.redis === true ? TEST_REDIS_URL : typeof options.redis === 'string' ? options.redis : '';
  // A prefix made here is this node's alone: close() deletes its keys. A prefix passed in is the caller's.
  const ownPrefix = options.redisKeyPrefix === undefined && options.redis === true ? newRedisPrefix() : undefined;
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: options.redisKeyPrefix ?? ownPrefix ?? newRedisPrefix(),
    DATA_DIR: dataDir,
    API_KEY_SECRET: 'test-secret-test-secret-test-secret-0123',
    NODE_PREFIX: '88.118',
    // Tests send bursts from one address; the rate limit suites set their own limits.
    RATE_LIMIT_RESOLVE_ANONYMOUS: '100000000',
    RATE_LIMIT_RESOLVE_KEYED: '100000000',
    RATE_LIMIT_REGISTER: '100000000',
    RATE_LIMIT_ONBOARDING: '100000000',
    RATE_LIMIT_ADMIN: '100000000',
    RATE_LIMIT_STATS: '100000000',
    RATE_LIMIT_AUDIT: '100000000',
    ...options.env,
  });
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const node = await startNode(config, { log, sinks: options.sinks ?? [] });
  // Only the first node on a database writes the admin key file; later ones reuse the same dir.
  const adminKey = (await readFile(path.join(dataDir, 'admin.key'), 'utf8').catch(() => '')).trim();
  return {
    url: node.url,
    config,
    adminKey,
    node,
    close: async () => {
      await node.close();
      if (ownPrefix) await clearRedisPrefix(ownPrefix);
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Deletes every Redis key a test wrote under its prefix. */
export async function clearRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
