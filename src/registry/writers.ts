/**
 * The write side, built the same way for the node and for the command line (`snode import`), so
 * both write through the same checks and the same change sinks.
 */
import { join } from 'node:path';
import type pg from 'pg';
import type { Config } from '../config.js';
import type { Logger } from '../infra/logger.js';
import type { CacheInvalidation } from '../resolver/resolver-cache.js';
import { registrationCountingSink } from '../stats/registration-sink.js';
import { BatchRegistry } from './batch.js';
import { itemChecker } from './batch-items.js';
import type { ChangeSink } from './change-sink.js';
import { Importer } from './importer.js';
import { RegistryService } from './service.js';
import { WriteCoalescer } from './write-coalescer.js';
import { TemplateStore } from './templates-store.js';
import { LocalTenancyChanges, type TenancyChanges } from '../tenancy/change-bus.js';

export interface Writers {
  registry: RegistryService;
  batches: BatchRegistry;
  importer: Importer;
  templates: TemplateStore;
}

export function buildWriters(
  config: Config,
  pool: pg.Pool,
  cache: CacheInvalidation,
  log: Logger,
  extraSinks: readonly ChangeSink[] = [],
  /** Prefixes an admin disabled accept no writes (the tenancy service knows them). */
  isDisabled: (prefix: string) => boolean = () => false,
  /** Where template changes are announced and heard (the tenancy change bus). */
  changes: TenancyChanges = new LocalTenancyChanges(),
  /** Whether an API key may still be used: uploaded imports stop when theirs is revoked (the tenancy service knows). */
  isKeyValid: (keyId: string) => Promise<boolean> = async () => true,
): Writers {
  const limits = { maxValues: config.MAX_VALUES_PER_RECORD, maxValueBytes: config.MAX_VALUE_BYTES, defaultTtl: config.DEFAULT_VALUE_TTL };
  const sinks = [registrationCountingSink(config.STATS_TIME_ZONE), ...extraSinks];
  const templates = new TemplateStore(pool, changes);
  const registry = new RegistryService(pool, cache, sinks, limits, config.NODE_PREFIX, isDisabled, templates);
  const batches = new BatchRegistry(pool, registry, cache, limits, config.IDEMPOTENCY_KEY_TTL, templates);
  // Single writes commit in groups; half the pool at most, so reads always find a connection.
  const groups = Math.max(1, Math.min(config.WRITE_GROUPS_IN_FLIGHT, Math.floor(config.PG_POOL_MAX / 2)));
  registry.groupWritesWith(new WriteCoalescer(pool, batches, cache, groups));
  const importer = new Importer(pool, batches, cache, itemChecker(config.MAX_VALUES_PER_RECORD), join(config.DATA_DIR, 'imports'), log, config.IMPORT_LEASE_SECONDS, isKeyValid);
  return { registry, batches, importer, templates };
}
