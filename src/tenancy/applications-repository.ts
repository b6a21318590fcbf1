/** SQL of enterprise applications (onboarding). */
import type { Db } from '../infra/postgres.js';

export type ApplicationState = 'pending' | 'approved' | 'rejected';

export interface ApplicationRow {
  id: string;
  name: string;
  uscc: string;
  contact: { name: string; email: string; phone: string };
  industryCode: string;
  requestedPrefix: string | null;
  state: ApplicationState;
  reason: string | null;
  enterpriseId: string | null;
  prefix: string | null;
  createdAt: string;
  decidedAt: string | null;
}

export interface NewApplication {
  name: string;
  uscc: string;
  contact: { name: string; email: string; phone: string };
  industryCode: string;
  requestedPrefix: string | null;
}

type DbRow = {
  id: string; name: string; uscc: string; contact_name: string; contact_email: string; contact_phone: string; industry_code: string;
  requested_prefix: string | null; state: ApplicationState; reason: string | null; enterprise_id: string | null; prefix: string | null;
  created_at: Date; decided_at: Date | null;
};

const COLUMNS = `id, name, uscc, contact_name, contact_email, contact_phone, industry_code, requested_prefix, state, reason,
  enterprise_id, prefix, created_at, decided_at`;

const toRow = (r: DbRow): ApplicationRow => ({
  id: r.id, name: r.name, uscc: r.uscc, contact: { name: r.contact_name, email: r.contact_email, phone: r.contact_phone },
  industryCode: r.industry_code, requestedPrefix: r.requested_prefix, state: r.state, reason: r.reason,
  enterpriseId: r.enterprise_id, prefix: r.prefix, createdAt: r.created_at.toISOString(), decidedAt: r.decided_at ? r.decided_at.toISOString() : null,
});

export async function insertApplication(db: Db, a: NewApplication): Promise<ApplicationRow> {
  const { rows } = await db.query<DbRow>(
    `INSERT INTO enterprise_applications (name, uscc, contact_name, contact_email, contact_phone, industry_code, requested_prefix)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
    [a.name, a.uscc, a.contact.name, a.contact.email, a.contact.phone, a.industryCode, a.requestedPrefix],
  );
  return toRow(rows[0]!);
}

export async function findApplication(db: Db, id: string, forUpdate = false): Promise<ApplicationRow | undefined> {
  const { rows } = await db.query<DbRow>(`SELECT ${COLUMNS} FROM enterprise_applications WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  return rows[0] ? toRow(rows[0]) : undefined;
}

/**
 * The admins' list. A pending application's enterpriseId is the enterprise its USCC already
 * belongs to, if any: approving it adds a prefix to that enterprise, so the admin must know.
 */
export async function listApplications(db: Db, state: ApplicationState | undefined, limit: number, offset: number): Promise<ApplicationRow[]> {
  const { rows } = await db.query<DbRow>(
    `SELECT a.id, a.name, a.uscc, a.contact_name, a.contact_email, a.contact_phone, a.industry_code, a.requested_prefix, a.state, a.reason,
       CASE WHEN a.state = 'pending' THEN e.id ELSE a.enterprise_id END AS enterprise_id, a.prefix, a.created_at, a.decided_at
     FROM enterprise_applications a LEFT JOIN enterprises e ON e.uscc = a.uscc
     WHERE ($1::text IS NULL OR a.state = $1) ORDER BY a.created_at, a.id LIMIT $2 OFFSET $3`,
    [state ?? null, limit, offset],
  );
  return rows.map(toRow);
}

export async function decideApplication(
  db: Db,
  id: string,
  decision: { state: 'approved' | 'rejected'; reason: string | null; enterpriseId: string | null; prefix: string | null },
): Promise<ApplicationRow> {
  const { rows } = await db.query<DbRow>(
    `UPDATE enterprise_applications SET state = $2, reason = $3, enterprise_id = $4, prefix = $5, decided_at = now()
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, decision.state, decision.reason, decision.enterpriseId, decision.prefix],
  );
  return toRow(rows[0]!);
}
