/** The in-process rate-limit counts reach Redis on sync(), including counts made while a sync runs. */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalFirstStore } from '../../src/tenancy/rate-limit-stores.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { clearRedisPrefix, newRedisPrefix } from '../helpers/node.js';

const prefix = newRedisPrefix();
const redis = new Redis(TEST_REDIS_URL);
const stores: LocalFirstStore[] = [];

afterAll(async () => {
  for (const store of stores) store.stop();
  await clearRedisPrefix(prefix);
  redis.disconnect();
});

describe('LocalFirstStore.sync', () => {
  it('adds counts made while a sync was already running before it resolves', async () => {
    await redis.ping(); // the store syncs only over a ready connection
    const store = new LocalFirstStore(redis, `${prefix}rl:`, 3_600_000);
    stores.push(store);
    for (let i = 0; i < 3; i += 1) store.count('k', 60_000);
    const running = store.sync();
    store.count('k', 60_000); // after the running sync took its keys
    await store.sync();
    expect(Number(await redis.get(`${prefix}rl:k`))).toBe(4);
    await running;
    expect(store.count('k', 60_000).current).toBe(5);
  });
});
