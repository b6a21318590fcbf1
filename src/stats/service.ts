/**
 * Statistics for auditors, admins and enterprises: read from the rollups (never by scanning
 * identifiers). Auditors and admins see the node; an enterprise key sees its own prefixes only.
 */
import type pg from 'pg';
import { errors } from '../infra/errors.js';
import { withTransaction } from '../infra/postgres.js';
import type { Actor } from '../tenancy/actor.js';
import type { PrefixDirectoryRow } from '../tenancy/repository.js';
import type { TenancyService } from '../tenancy/service.js';
import {
  addDays,
  addMonths,
  bucketOf,
  bucketsBetween,
  dayIn,
  parseDay,
  parsePeriod,
  PeriodError,
  bucketCount,
  quarterStart,
  monthStart,
  type Day,
  type Granularity,
  type Period,
} from './periods.js';
import { seriesByBucket, sumAllTime, sumRange, type Counts, type Metric, type Scope } from './repository.js';

const MAX_BUCKETS = 4000;

export interface RegistrationCounts {
  creates: number;
  updates: number;
  deletes: number;
}
export interface ResolutionCountsView {
  found: number;
  notFound: number;
  cached: number;
  total: number;
}

const registrationView = (c: Counts): RegistrationCounts => ({ creates: c[0], updates: c[1], deletes: c[2] });
const resolutionView = (c: Counts): ResolutionCountsView => ({ found: c[0], notFound: c[1], cached: c[2], total: c[0] + c[1] });
const view = (metric: Metric, c: Counts) => (metric === 'registrations' ? registrationView(c) : resolutionView(c));

export interface Filter {
  prefix?: string;
  enterprise?: string;
}

/** Sums a per-prefix map into one set of counts. */
function total(byPrefix: Map<string, Counts>): Counts {
  const t: Counts = [0, 0, 0];
  for (const c of byPrefix.values()) {
    t[0] += c[0];
    t[1] += c[1];
    t[2] += c[2];
  }
  return t;
}

function period(label: string): Period {
  try {
    return parsePeriod(label);
  } catch (err) {
    if (err instanceof PeriodError) throw errors.badRequest('INVALID_PERIOD', err.message);
    throw err;
  }
}

function day(input: string, name: string): Day {
  try {
    return parseDay(input);
  } catch (err) {
    if (err instanceof PeriodError) throw errors.badRequest('INVALID_DATE', `${name}: ${err.message}`);
    throw err;
  }
}

export class StatsService {
  constructor(
    private readonly pool: pg.Pool,
    private readonly tenancy: TenancyService,
    readonly timeZone: string,
  ) {}

  today(): Day {
    return dayIn(this.timeZone);
  }

  private requireReader(actor: Actor): Extract<Actor, { kind: 'key' }> {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    return actor;
  }

  /** The prefixes a caller may see, narrowed by an optional prefix or enterprise filter. */
  private async scope(actor: Actor, filter: Filter): Promise<Scope> {
    const key = this.requireReader(actor);
    if (filter.prefix !== undefined && filter.enterprise !== undefined) {
      throw errors.badRequest('INVALID_FILTER', 'give prefix or enterprise, not both');
    }
    const prefix = filter.prefix?.toUpperCase();
    if (key.role === 'enterprise') {
      const readable = (await this.tenancy.readablePrefixes(key.keyId)).map((r) => r.prefix);
      if (prefix !== undefined && !readable.includes(prefix)) throw errors.forbidden('PREFIX_NOT_OWNED', `this key may not read statistics of ${prefix}`);
      if (filter.enterprise !== undefined && filter.enterprise !== key.enterpriseId) {
        throw errors.forbidden('ENTERPRISE_NOT_OWNED', 'an enterprise key reads only its own enterprise');
      }
      return { kind: 'prefixes', prefixes: prefix !== undefined ? [prefix] : readable };
    }
    if (prefix !== undefined) return { kind: 'prefixes', prefixes: [prefix] };
    if (filter.enterprise !== undefined) {
      await this.tenancy.getEnterprise(filter.enterprise);
      const directory = await this.tenancy.prefixDirectory();
      return { kind: 'prefixes', prefixes: directory.filter((d) => d.enterpriseId === filter.enterprise).map((d) => d.prefix) };
    }
    return { kind: 'node' };
  }

  /** The directory rows a caller may see, and the scope that reads their figures. */
  private async directory(actor: Actor): Promise<{ rows: PrefixDirectoryRow[]; scope: Scope }> {
    const key = this.requireReader(actor);
    const all = await this.tenancy.prefixDirectory();
    if (key.role !== 'enterprise') return { rows: all, scope: { kind: 'every-prefix' } };
    // Its enterprise's prefixes in every state (a disabled one keeps its history), as restricted.
    const readable = new Set((await this.tenancy.readablePrefixes(key.keyId)).map((r) => r.prefix));
    const rows = all.filter((d) => readable.has(d.prefix));
    return { rows, scope: { kind: 'prefixes', prefixes: rows.map((d) => d.prefix) } };
  }

  private async sum(metric: Metric, from: Day, to: Day, scope: Scope): Promise<Counts> {
    return total(await sumRange(this.pool, metric, from, to, scope));
  }

  async overview(actor: Actor) {
    const key = this.requireReader(actor);
    // An enterprise key sees its own enterprise and its prefixes (with their states), not the node's tenancy.
    const own = key.role === 'enterprise' ? await this.tenancy.readablePrefixes(key.keyId) : undefined;
    const scope: Scope = own ? { kind: 'prefixes', prefixes: own.map((p) => p.prefix) } : await this.scope(actor, {});
    const today = this.today();
    const ranges = { today: today, month: monthStart(today), quarter: quarterStart(today) } as const;
    const [stored, tenancy, ...figures] = await Promise.all([
      sumAllTime(this.pool, 'registrations', scope).then(total),
      this.tenancy.counts(),
      ...(['registrations', 'resolutions'] as const).flatMap((metric) =>
        Object.values(ranges).map((from) => this.sum(metric, from, today, scope)),
      ),
    ]);
    const f = figures as Counts[];
    const ownStates: Record<string, number> = { pending: 0, active: 0, disabled: 0, rejected: 0 };
    for (const p of own ?? []) ownStates[p.state] = (ownStates[p.state] ?? 0) + 1;
    return {
      timeZone: this.timeZone,
      today,
      identifiers: stored[0] - stored[2],
      enterprises: own ? 1 : tenancy.enterprises,
      prefixes: own ? ownStates : tenancy.prefixes,
      registrations: { today: registrationView(f[0]!), month: registrationView(f[1]!), quarter: registrationView(f[2]!) },
      resolutions: { today: resolutionView(f[3]!), month: resolutionView(f[4]!), quarter: resolutionView(f[5]!) },
    };
  }

  async series(actor: Actor, metric: Metric, query: { from?: string; to?: string; granularity?: Granularity } & Filter) {
    const scope = await this.scope(actor, query);
    const granularity = query.granularity ?? 'day';
    const to = query.to !== undefined ? day(query.to, 'to') : this.today();
    const from =
      query.from !== undefined ? day(query.from, 'from') : granularity === 'day' ? addDays(to, -29) : `${to.slice(0, 4)}-01-01`;
    if (from > to) throw errors.badRequest('INVALID_RANGE', `from (${from}) is after to (${to})`);
    // Counted before the buckets are made: a range of centuries by day was millions of them.
    const count = bucketCount(from, to, granularity);
    if (count > MAX_BUCKETS) throw errors.badRequest('RANGE_TOO_LONG', `${count} buckets; at most ${MAX_BUCKETS} per request`);
    const buckets = bucketsBetween(from, to, granularity);
    const start = buckets[0]!.start;
    const last = buckets[buckets.length - 1]!.start;
    const end = granularity === 'day' ? last : addDays(addMonths(last, granularity === 'month' ? 1 : 3), -1);
    const counts = await seriesByBucket(this.pool, metric, granularity, start, end, scope);
    return {
      metric,
      granularity,
      from: start,
      to: end,
      series: buckets.map((b) => ({ period: b.label, start: b.start, ...view(metric, counts.get(b.start) ?? [0, 0, 0]) })),
    };
  }

  async top(actor: Actor, metric: Metric, periodLabel: string | undefined, limit: number) {
    const p = period(periodLabel ?? bucketOf(this.today(), 'month').label);
    const { rows: directory, scope } = await this.directory(actor);
    const byPrefix = await sumRange(this.pool, metric, p.from, p.to, scope);
    const byEnterprise = new Map<string, { enterpriseId: string; name: string; uscc: string; value: number }>();
    for (const d of directory) {
      const c = byPrefix.get(d.prefix) ?? [0, 0, 0];
      const value = metric === 'registrations' ? c[0] : c[0] + c[1];
      const e = byEnterprise.get(d.enterpriseId) ?? { enterpriseId: d.enterpriseId, name: d.enterprise, uscc: d.uscc, value: 0 };
      e.value += value;
      byEnterprise.set(d.enterpriseId, e);
    }
    const items = [...byEnterprise.values()].sort((a, b) => b.value - a.value || a.name.localeCompare(b.name)).slice(0, limit);
    return { metric, period: p.label, from: p.from, to: p.to, items };
  }

  async report(actor: Actor, periodLabel: string) {
    const p = period(periodLabel);
    const { rows: directory, scope } = await this.directory(actor);
    const today = this.today();
    // Stored at the period's end: all time, less what changed after it (little, for recent
    // periods). The four reads share one snapshot: a write committing between two of them would
    // be in one figure and not the other.
    const [allTime, after, registrations, resolutions] = await withTransaction(this.pool, async (tx) => [
      await sumAllTime(tx, 'registrations', scope),
      p.to < today ? await sumRange(tx, 'registrations', addDays(p.to, 1), today, scope) : new Map<string, Counts>(),
      await sumRange(tx, 'registrations', p.from, p.to, scope),
      await sumRange(tx, 'resolutions', p.from, p.to, scope),
    ] as const, true);
    const rows = directory.map((d) => {
      const all = allTime.get(d.prefix) ?? [0, 0, 0];
      const later = after.get(d.prefix) ?? [0, 0, 0];
      const s: Counts = [all[0] - later[0], all[1] - later[1], all[2] - later[2]];
      const r = registrations.get(d.prefix) ?? [0, 0, 0];
      const q = resolutions.get(d.prefix) ?? [0, 0, 0];
      return {
        enterprise: d.enterprise,
        uscc: d.uscc,
        prefix: d.prefix,
        prefixState: d.state,
        identifiers: s[0] - s[2],
        creates: r[0],
        updates: r[1],
        deletes: r[2],
        resolutionsFound: q[0],
        resolutionsNotFound: q[1],
        resolutionsCached: q[2],
        resolutionsTotal: q[0] + q[1],
      };
    });
    return { period: p.label, from: p.from, to: p.to, timeZone: this.timeZone, generatedAt: new Date().toISOString(), rows };
  }
}

