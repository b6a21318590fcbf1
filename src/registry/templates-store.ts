/**
 * Templates on the write path: a per-process cache of compiled templates, so checking a record is
 * a map lookup, and the step inside a record write that marks a version used.
 *
 * Correctness never rests on the cache being fresh. A version in use never changes again, so a
 * cached in-use template is final. A cached version not yet in use is re-read under lock in the
 * write's transaction (`claim`): if it changed since it was cached, the write is run again against
 * the new definition (TemplateChanged); else it is marked in use, so a template change waiting on
 * that lock finds it in use and is refused. Notifications (the tenancy change bus, topic
 * `templates`) only spare other processes that extra round: every process drops its cache when a
 * template is changed or first used anywhere. "No such version" is also cached, for a few seconds at
 * most, in case a notification is lost.
 */
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { HandleValue } from '../handle/values.js';
import { coarseNow } from '../infra/coarse-clock.js';
import type { Tx } from '../infra/postgres.js';
import type { TenancyChanges } from '../tenancy/change-bus.js';
import { compile, templateName, templateReference, unknownTemplate, violationError, violations, type CompiledTemplate } from './templates-check.js';
import * as repo from './templates-repository.js';

/** How long "no such version" is believed without a notification, in ms. */
const MISSING_MS = 5000;

interface Entry {
  compiled: CompiledTemplate | null;
  loadedAt: number;
}

const CACHE_BYTES = 32 * 1024 * 1024;

/** An estimate: the items as JSON, twice (the strings and the objects around them), and a little for the rest. */
function entryBytes(entry: Entry): number {
  return 256 + (entry.compiled ? 2 * JSON.stringify(entry.compiled.template.items).length : 0);
}

/** A template changed between the check and the write: run the write again. */
export class TemplateChanged extends Error {}

export type LoadedTemplates = ReadonlyMap<string, CompiledTemplate | null>;

export class TemplateStore {
  /** Bounded in bytes (a version may hold 1,000 items): roughly what each entry's items take. */
  private readonly entries = new LRUCache<string, Entry>({ maxSize: CACHE_BYTES, sizeCalculation: entryBytes });
  private generation = 0;
  /** Statements this store has run (tests check that a batch costs a fixed few, not one an item). */
  statements = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly changes: TenancyChanges,
  ) {
    changes.onChange(() => this.clear(), 'templates');
  }

  clear(): void {
    this.generation += 1;
    this.entries.clear();
  }

  /** How many times the cache was dropped (tests wait for a notification with it). */
  get clears(): number {
    return this.generation;
  }

  /** What the cache holds for a version, expired or not (tests watch invalidation with it). */
  peek(prefix: string, version: string): 'missing' | 'in use' | 'not in use' | undefined {
    const entry = this.entries.get(templateName(prefix, version));
    if (!entry) return undefined;
    if (!entry.compiled) return 'missing';
    return entry.compiled.template.inUse ? 'in use' : 'not in use';
  }

  private cached(key: string): CompiledTemplate | null | undefined {
    const entry = this.entries.get(key);
    if (!entry || (entry.compiled === null && coarseNow() - entry.loadedAt >= MISSING_MS)) return undefined;
    return entry.compiled;
  }

  /** The named versions, from the cache or in one query for those it lacks; null: no such version. */
  async load(keys: ReadonlyArray<{ prefix: string; version: string }>): Promise<LoadedTemplates> {
    const loaded = new Map<string, CompiledTemplate | null>();
    const missing: Array<{ prefix: string; version: string }> = [];
    for (const key of keys) {
      const name = templateName(key.prefix, key.version);
      if (loaded.has(name)) continue;
      const hit = this.cached(name);
      if (hit === undefined) {
        loaded.set(name, null);
        missing.push(key);
      } else {
        loaded.set(name, hit);
      }
    }
    if (missing.length === 0) return loaded;
    const token = this.generation;
    this.statements += 1;
    const found = await repo.findMany(this.pool, missing);
    const now = coarseNow();
    for (const template of found) loaded.set(templateName(template.prefix, template.version), compile(template));
    // A load that began before a clear may hold what the clear was about: use it, do not keep it.
    if (token === this.generation) {
      for (const key of missing) {
        const name = templateName(key.prefix, key.version);
        this.entries.set(name, { compiled: loaded.get(name) ?? null, loadedAt: now });
      }
    }
    return loaded;
  }

  /**
   * Checks normalised values against the template they name (none: undefined, at no cost but a
   * pass over the values). Throws TEMPLATE_REFERENCE_INVALID, TEMPLATE_NOT_FOUND or TEMPLATE_VIOLATION.
   */
  checkWith(loaded: LoadedTemplates, prefix: string, version: string, values: readonly HandleValue[]): CompiledTemplate {
    const compiled = loaded.get(templateName(prefix, version));
    if (!compiled) throw unknownTemplate(prefix, version);
    const found = violations(compiled, values);
    if (found.length > 0) throw violationError(compiled, found);
    return compiled;
  }

  /**
   * A single write's check: the template its values name, loaded and checked; undefined, with no
   * promise made, for the common record that names none.
   */
  check(prefix: string, values: readonly HandleValue[]): Promise<CompiledTemplate> | undefined {
    const version = templateReference(values);
    if (version === undefined) return undefined;
    return this.load([{ prefix, version }]).then((loaded) => this.checkWith(loaded, prefix, version, values));
  }

  /**
   * Inside a record write's transaction, before its rows are written: locks the versions it was
   * checked against that were not known to be in use, makes sure each is still the revision
   * checked (else TemplateChanged), and marks them in use. Returns true when this write is the
   * first to use one: announce() after commit.
   */
  async claim(tx: Tx, used: ReadonlyArray<CompiledTemplate | undefined>): Promise<boolean> {
    const pending = new Map<string, CompiledTemplate>();
    for (const compiled of used) {
      if (compiled && !compiled.template.inUse) pending.set(templateName(compiled.template.prefix, compiled.template.version), compiled);
    }
    if (pending.size === 0) return false;
    const keys = [...pending.values()].map((c) => ({ prefix: c.template.prefix, version: c.template.version }));
    this.statements += 1;
    const current = await repo.lockForUse(tx, keys);
    const stale = keys.length !== current.length || current.some((row) => row.revision !== pending.get(templateName(row.prefix, row.version))!.template.revision);
    if (stale) {
      this.clear();
      throw new TemplateChanged(`a template named by this write changed while it was checked`);
    }
    const unmarked = current.filter((row) => !row.inUse);
    if (unmarked.length > 0) this.statements += 1;
    const marked = unmarked.length > 0 ? await repo.markUsed(tx, unmarked) : 0;
    // Already marked by another process: forget the stale "not in use" so the next write skips this.
    if (current.some((row) => row.inUse)) for (const row of current) if (row.inUse) this.entries.delete(templateName(row.prefix, row.version));
    return marked > 0;
  }

  /** After the commit of a write whose claim() returned true: every process rereads the templates. */
  announce(): Promise<void> {
    return this.changes.publish('templates');
  }

  /** After a template change committed. */
  changed(): Promise<void> {
    return this.changes.publish('templates');
  }
}
