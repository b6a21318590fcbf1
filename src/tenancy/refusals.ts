/**
 * Refused requests (401: no, bad, revoked or expired key; 403: a key beyond its rights) in the
 * audit log, without letting whoever sends them fill it. Each process tallies refusals in memory
 * per (status, code, client IP, key) for one window of AUDIT_REFUSED_WINDOW_MS and then writes one
 * `auth.refused` entry per tally: its count, first and last time, routes and a request id. At most
 * AUDIT_REFUSED_MAX_SOURCES tallies a window, and at most PER_IP of them per client IP; refusals
 * beyond that are folded into one tally per IP (key '*'), or into one per status and code for all
 * further IPs. So a flood costs at most that many rows a window and process, whatever its size.
 * A presented key is kept only as its HMAC, and named (the key id, revoked or expired) when the
 * tally is written, by one query for all of them.
 */
import type { FastifyRequest } from 'fastify';
import type { AuditEntry } from '../audit/entry.js';
import type { AuditTrail } from '../audit/service.js';
import type { Logger } from '../infra/logger.js';
import type pg from 'pg';
import type { TenancyService } from './service.js';

/** Tallies one IP may open per window before the rest of its refusals share one. */
const PER_IP = 10;
/** Distinct routes named in one entry. */
const ROUTES_KEPT = 5;

export interface RefusalSettings {
  windowMs: number;
  maxSources: number;
}

interface Tally {
  status: number;
  code: string;
  /** null: the tally of every IP past the limit. */
  ip: string | null;
  keyId: string | null;
  role: string;
  /** base64 HMAC of a presented key that was refused (named when written). */
  keyHash: string | null;
  count: number;
  firstAt: number;
  lastAt: number;
  requestId: string;
  routes: Set<string>;
  /** For the folded tallies: how many distinct sources they hold (at least). */
  sources?: Set<string>;
}

export class RefusalLog {
  private tallies = new Map<string, Tally>();
  private perIp = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<number> = Promise.resolve(0);

  constructor(
    private readonly pool: pg.Pool,
    private readonly audit: AuditTrail,
    private readonly tenancy: TenancyService,
    private readonly settings: RefusalSettings,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.settings.windowMs);
    this.timer.unref();
  }

  /** Writes what is tallied (also on close). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  /** Counts a refused request. No I/O: called after the answer is sent. */
  record(request: FastifyRequest, status: number, code: string): void {
    const { actor } = request;
    let keyId: string | null = null;
    let role = 'anonymous';
    let keyHash: string | null = null;
    if (actor && actor.kind === 'key') {
      keyId = actor.keyId;
      role = actor.role;
    } else if (status === 401) {
      keyHash = this.tenancy.presentedKeyHash(request.headers.authorization)?.toString('base64') ?? null;
    }
    const ip = request.ip;
    const route = `${request.method} ${request.routeOptions.url ?? '(no route)'}`;
    const now = Date.now();
    let id = `${status}\u0000${code}\u0000${ip}\u0000${keyId ?? keyHash ?? '-'}`;
    let tally = this.tallies.get(id);
    if (!tally) {
      const opened = this.perIp.get(ip) ?? 0;
      let folded: 'ip' | 'all' | undefined;
      if (this.tallies.size >= this.settings.maxSources) folded = 'all';
      else if (opened >= PER_IP) folded = 'ip';
      if (folded) {
        id = folded === 'all' ? `${status}\u0000${code}\u0000*` : `${status}\u0000${code}\u0000${ip}\u0000*`;
        tally = this.tallies.get(id);
        if (!tally) {
          tally = { status, code, ip: folded === 'all' ? null : ip, keyId: null, role: 'anonymous', keyHash: null, count: 0, firstAt: now, lastAt: now, requestId: request.id, routes: new Set(), sources: new Set() };
          this.tallies.set(id, tally); // may pass maxSources by one per status and code: the folded tallies
        }
      } else {
        tally = { status, code, ip, keyId, role, keyHash, count: 0, firstAt: now, lastAt: now, requestId: request.id, routes: new Set() };
        this.tallies.set(id, tally);
        this.perIp.set(ip, opened + 1);
      }
    }
    tally.count += 1;
    tally.lastAt = now;
    if (tally.routes.size < ROUTES_KEPT) tally.routes.add(route);
    if (tally.sources && tally.sources.size < 10_000) tally.sources.add(`${ip} ${keyId ?? keyHash ?? '-'}`);
  }

  /** Refusals counted and not yet written. */
  pending(): number {
    let n = 0;
    for (const t of this.tallies.values()) n += t.count;
    return n;
  }

  /** Writes one entry per tally and starts a new window; returns how many entries. */
  flush(): Promise<number> {
    this.flushing = this.flushing.then(() => this.write()).catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, 'refused requests not written to the audit log');
      return 0;
    });
    return this.flushing;
  }

  private async write(): Promise<number> {
    if (this.tallies.size === 0) return 0;
    const taken = this.tallies;
    const tallies = [...taken.values()];
    this.tallies = new Map();
    this.perIp = new Map();
    try {
      return await this.append(tallies);
    } catch (err) {
      // Kept for the next window rather than lost (a database outage, say).
      for (const [id, t] of taken) {
        const now = this.tallies.get(id);
        if (!now) this.tallies.set(id, t);
        else {
          now.count += t.count;
          now.firstAt = t.firstAt;
        }
      }
      throw err;
    }
  }

  private async append(tallies: Tally[]): Promise<number> {
    const hashes = [...new Set(tallies.flatMap((t) => (t.keyHash ? [t.keyHash] : [])))];
    const known = hashes.length > 0 ? await this.tenancy.keysByHash(hashes.map((h) => Buffer.from(h, 'base64'))) : new Map();
    const entries: AuditEntry[] = tallies.map((t) => {
      const key = t.keyHash ? known.get(t.keyHash) : undefined;
      return {
        context: { keyId: t.keyId ?? key?.id ?? null, role: key?.role ?? t.role, requestId: t.requestId, clientIp: t.ip },
        action: 'auth.refused',
        target: [...t.routes][0]!,
        detail: {
          status: t.status,
          code: t.code,
          count: t.count,
          firstAt: new Date(t.firstAt).toISOString(),
          lastAt: new Date(t.lastAt).toISOString(),
          routes: [...t.routes],
          ...(t.keyHash ? { key: key ? key.state : 'unknown' } : {}),
          ...(t.sources ? { folded: true, sources: t.sources.size } : {}),
        },
      };
    });
    await this.audit.append(this.pool, entries);
    return entries.length;
  }
}
