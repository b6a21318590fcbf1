/**
 * Enterprise onboarding: an enterprise applies; an admin approves (the enterprise is created or
 * found by its code, a prefix allocated, its first key issued) or rejects with a reason. Every
 * step is audited in its own transaction.
 */
import type pg from 'pg';
import type { AuditContext } from '../audit/entry.js';
import { errors } from '../infra/errors.js';
import { sqlState, UNIQUE_VIOLATION, withTransaction, type Tx } from '../infra/postgres.js';
import * as apps from './applications-repository.js';
import * as repo from './repository.js';
import { ALLOCATION_LOCK, checkedPrefix, checkedUscc, type NewKey, type TenancyService } from './service.js';

// Approvals allocating prefixes queue here, so two never pick the same free code.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ApplicationInput {
  name: string;
  uscc: string;
  contact: { name: string; email: string; phone?: string };
  industryCode: string;
  requestedPrefix?: string;
}

export interface Approval {
  application: apps.ApplicationRow;
  enterprise: repo.EnterpriseRow;
  prefix: repo.PrefixRow;
  /** The enterprise's first key, shown once. */
  key: NewKey;
}

/** The smallest positive number not yet a prefix directly below the node prefix. */
export function nextFreePrefix(nodePrefix: string, taken: readonly string[]): string {
  const used = new Set(taken);
  for (let n = 1; ; n += 1) {
    const candidate = `${nodePrefix}.${n}`;
    if (!used.has(candidate)) return candidate;
  }
}

export class OnboardingService {
  constructor(
    private readonly pool: pg.Pool,
    private readonly tenancy: TenancyService,
  ) {}

  private static id(id: string): string {
    if (!UUID.test(id)) throw errors.notFound('APPLICATION_NOT_FOUND', `no application ${JSON.stringify(id)}`);
    return id;
  }

  async apply(input: ApplicationInput, by: AuditContext): Promise<apps.ApplicationRow> {
    const name = input.name.trim();
    if (name.length === 0) throw errors.badRequest('INVALID_NAME', 'company name is empty');
    if (input.contact.name.trim().length === 0) throw errors.badRequest('INVALID_CONTACT', 'contact name is empty');
    const uscc = checkedUscc(input.uscc);
    const requestedPrefix = input.requestedPrefix === undefined ? null : checkedPrefix(input.requestedPrefix, this.tenancy.nodePrefix);
    try {
      return await withTransaction(this.pool, async (tx) => {
        const row = await apps.insertApplication(tx, {
          name, uscc, industryCode: input.industryCode, requestedPrefix,
          contact: { name: input.contact.name.trim(), email: input.contact.email.trim(), phone: input.contact.phone?.trim() ?? '' },
        });
        await this.tenancy.audit.append(tx, [{ context: by, action: 'application.submit', target: row.id, after: row, detail: { uscc, requestedPrefix } }]);
        return row;
      });
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) throw errors.conflict('APPLICATION_PENDING', `an application for ${uscc} is pending already`);
      throw err;
    }
  }

  async get(id: string): Promise<apps.ApplicationRow> {
    const row = await apps.findApplication(this.pool, OnboardingService.id(id));
    if (!row) throw errors.notFound('APPLICATION_NOT_FOUND', `no application ${id}`);
    return row;
  }

  list(state: apps.ApplicationState | undefined, limit: number, offset: number): Promise<apps.ApplicationRow[]> {
    return apps.listApplications(this.pool, state, limit, offset);
  }

  private async pending(tx: Tx, id: string): Promise<apps.ApplicationRow> {
    const row = await apps.findApplication(tx, OnboardingService.id(id), true);
    if (!row) throw errors.notFound('APPLICATION_NOT_FOUND', `no application ${id}`);
    if (row.state !== 'pending') throw errors.conflict('APPLICATION_DECIDED', `application ${id} is ${row.state} already`);
    return row;
  }

  /** Allocates the requested prefix if free (else the next free code), and issues the first key. */
  async approve(id: string, by: AuditContext): Promise<Approval> {
    const result = await withTransaction(this.pool, async (tx) => {
      const application = await this.pending(tx, id);
      await tx.query('SELECT pg_advisory_xact_lock($1)', [ALLOCATION_LOCK]);
      const taken = await repo.childPrefixes(tx, this.tenancy.nodePrefix);
      const prefixName = application.requestedPrefix && !taken.includes(application.requestedPrefix)
        ? application.requestedPrefix
        : nextFreePrefix(this.tenancy.nodePrefix, taken);
      let enterpriseId = await repo.findEnterpriseIdByUscc(tx, application.uscc);
      // An enterprise that exists already (this is a further prefix for it) keeps its keys; the
      // applicant's key covers the new prefix only: knowing a company's USCC must not be enough
      // to control the identifiers it has registered.
      const existing = enterpriseId !== undefined;
      const audit = this.tenancy.audit;
      if (!enterpriseId) {
        const created = await repo.insertEnterprise(tx, application.name, application.uscc);
        enterpriseId = created.id;
        await audit.append(tx, [{ context: by, action: 'enterprise.create', target: created.id, after: created, detail: { uscc: created.uscc, application: id } }]);
      }
      const prefix = await repo.insertPrefix(tx, prefixName, enterpriseId);
      await audit.append(tx, [{ context: by, action: 'prefix.allocate', target: prefixName, after: prefix, detail: { enterpriseId, application: id } }]);
      const key = await this.tenancy.createKey(
        existing
          ? { role: 'enterprise', enterpriseId, label: `onboarding key for ${prefixName}`, prefixes: [prefixName] }
          : { role: 'enterprise', enterpriseId, label: 'first key (onboarding)' },
        by,
        tx,
      );
      const decided = await apps.decideApplication(tx, id, { state: 'approved', reason: null, enterpriseId, prefix: prefixName });
      await audit.append(tx, [{ context: by, action: 'application.approve', target: id, before: application, after: decided, detail: { prefix: prefixName, enterpriseId, existingEnterprise: existing } }]);
      const enterprise = (await repo.findEnterprise(tx, enterpriseId))!;
      return { application: decided, enterprise, prefix, key };
    }).catch((err: unknown) => {
      // Prefixes are allocated under the lock; an enterprise of the same code created by an admin
      // at this very moment is not: nothing was written, and approving again finds it.
      if (sqlState(err) === UNIQUE_VIOLATION) throw errors.conflict('ALLOCATION_RACE', 'an enterprise or prefix was created at the same moment; nothing was written: approve again');
      throw err;
    });
    await this.tenancy.changes.publish();
    return result;
  }

  async reject(id: string, reason: string, by: AuditContext): Promise<apps.ApplicationRow> {
    const text = reason.trim();
    if (text.length === 0) throw errors.badRequest('REASON_REQUIRED', 'a rejection needs a reason');
    return withTransaction(this.pool, async (tx) => {
      const application = await this.pending(tx, id);
      const decided = await apps.decideApplication(tx, id, { state: 'rejected', reason: text, enterpriseId: null, prefix: null });
      await this.tenancy.audit.append(tx, [{ context: by, action: 'application.reject', target: id, before: application, after: decided, detail: { reason: text } }]);
      return decided;
    });
  }
}
