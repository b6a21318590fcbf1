/**
 * Metadata templates (元数据模板): define, read and list the versions of a prefix's templates.
 * Who may define them is who may write records under the prefix (its enterprise, admins); anyone
 * may read them (they describe public data models). A version a record names is frozen; a change
 * that leaves out an item of the stored version is refused (items are disabled, never deleted).
 */
import type pg from 'pg';
import type { AuditContext } from '../audit/entry.js';
import type { AuditTrail } from '../audit/service.js';
import { InvalidHandleError, normalisePrefix } from '../handle/handle.js';
import { AppError, errors } from '../infra/errors.js';
import { withTransaction } from '../infra/postgres.js';
import type { Actor } from '../tenancy/actor.js';
import type { RegistryService } from './service.js';
import { checkDefinition, droppedItems, sameDefinition, templateName, type Template, type TemplateItem } from './templates-check.js';
import * as repo from './templates-repository.js';
import type { TemplateStore } from './templates-store.js';

export interface TemplateInput {
  description?: string;
  items: TemplateItem[];
}

export interface PutTemplateResult {
  template: Template;
  created: boolean;
  /** false when the PUT said exactly what was stored (nothing was written). */
  changed: boolean;
}

function prefixOf(input: string): string {
  try {
    return normalisePrefix(input);
  } catch (err) {
    if (err instanceof InvalidHandleError) throw errors.invalidHandle(`invalid prefix: ${err.message}`);
    throw err;
  }
}

/** Items as stored: in index order, with only the fields a template item has. */
function storedItems(items: readonly TemplateItem[]): TemplateItem[] {
  return [...items]
    .sort((a, b) => a.index - b.index)
    .map((i) => ({
      name: i.name,
      type: i.type,
      index: i.index,
      required: i.required,
      ...(i.minLength !== undefined ? { minLength: i.minLength } : {}),
      ...(i.maxLength !== undefined ? { maxLength: i.maxLength } : {}),
      enabled: i.enabled,
      ...(i.description !== undefined ? { description: i.description } : {}),
    }));
}

/** Template versions a prefix may define (they are never deleted). */
export const MAX_VERSIONS_PER_PREFIX = 1000;

export class TemplateService {
  constructor(
    private readonly pool: pg.Pool,
    private readonly registry: RegistryService,
    private readonly store: TemplateStore,
    private readonly audit: AuditTrail,
  ) {}

  /** May this actor define templates of this prefix? As for writing records under it. Returns the normalised prefix. */
  authorise(actor: Actor, prefixInput: string): string {
    // A "/" in the prefix (a %2F in the path) would otherwise pass: "88.118.8/junk/x" is a handle
    // under 88.118.8, and the template would be stored there.
    if (prefixInput.includes('/')) throw errors.invalidHandle(`invalid prefix ${JSON.stringify(prefixInput)}: a prefix holds no "/"`);
    return this.registry.authoriseWrite(actor, `${prefixInput}/x`).handle.prefix;
  }

  /** Creates a version, or replaces one no record names yet. */
  async put(actor: Actor, prefixInput: string, version: string, input: TemplateInput, by: AuditContext): Promise<PutTemplateResult> {
    const prefix = this.authorise(actor, prefixInput);
    const items = storedItems(input.items);
    checkDefinition(items);
    const next = { description: input.description ?? '', items };
    const name = templateName(prefix, version);
    const result = await withTransaction(this.pool, async (tx): Promise<PutTemplateResult> => {
      // A concurrent create between the lock and the insert: the second pass locks its row.
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const stored = await repo.lock(tx, prefix, version);
        if (!stored) {
          // Versions are never deleted: without a bound, one key could make a prefix's list (and a
          // batch naming every version) as large as it liked.
          if ((await repo.countVersions(tx, prefix)) >= MAX_VERSIONS_PER_PREFIX) {
            throw errors.conflict('TEMPLATE_LIMIT', `prefix ${prefix} already has ${MAX_VERSIONS_PER_PREFIX} template versions, the most a prefix may have`);
          }
          const inserted = await repo.insert(tx, prefix, version, next.description, items);
          if (!inserted) continue;
          await this.audit.append(tx, [{ context: by, action: 'template.create', target: name, after: next }]);
          return { template: inserted, created: true, changed: true };
        }
        if (sameDefinition(stored, next)) return { template: stored, created: false, changed: false };
        if (stored.inUse) {
          throw errors.conflict('TEMPLATE_IN_USE', `template ${name} is in use (records name it at index 1001), so it can no longer change; define a new version`);
        }
        const dropped = droppedItems(stored.items, items);
        if (dropped.length > 0) {
          const list = dropped.map((i) => `"${i.name}" (index ${i.index})`).join(', ');
          throw new AppError('TEMPLATE_ITEM_DROPPED', `template ${name}: item ${list} is left out; items are disabled, never deleted: send it with "enabled": false`, 409, undefined, {
            template: name,
            dropped: dropped.map((i) => ({ index: i.index, item: i.name })),
          });
        }
        const replaced = await repo.replace(tx, prefix, version, next.description, items);
        await this.audit.append(tx, [{ context: by, action: 'template.update', target: name, before: { description: stored.description, items: stored.items }, after: next, detail: { revision: replaced.revision } }]);
        return { template: replaced, created: false, changed: true };
      }
      throw new Error(`could not settle a concurrent creation of template ${name}`);
    });
    if (result.changed) await this.store.changed();
    return result;
  }

  async get(prefixInput: string, version: string): Promise<Template> {
    const prefix = prefixOf(prefixInput);
    const template = await repo.find(this.pool, prefix, version);
    if (!template) throw errors.notFound('TEMPLATE_NOT_FOUND', `prefix ${prefix} has no template version ${version}`);
    return template;
  }

  async list(prefixInput: string, page: number, pageSize: number): Promise<{ prefix: string; total: number; page: number; pageSize: number; templates: Template[] }> {
    const prefix = prefixOf(prefixInput);
    const { total, templates } = await repo.list(this.pool, prefix, pageSize, (page - 1) * pageSize);
    return { prefix, total, page, pageSize, templates };
  }
}
