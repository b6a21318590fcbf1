/**
 * Metadata templates (元数据模板), the pure part: what a template is, how a record names one (its
 * value at index 1001 holds the version, of the record's own prefix), and checking a record's
 * values against it. No I/O.
 */
import type { HandleValue } from '../handle/values.js';
import { AppError, ResponseCode } from '../infra/errors.js';

/** The value index that names the template version a record follows. */
export const TEMPLATE_INDEX = 1001;
/** Template items live at this index and above; lower indexes stay free (URL, EMAIL, HS_ADMIN...). */
export const FIRST_ITEM_INDEX = 2000;
/** A version: what index 1001 holds and the last segment of /api/templates/{prefix}/{version}. */
export const VERSION_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$';
const VERSION = new RegExp(VERSION_PATTERN);
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export interface TemplateItem {
  name: string;
  /** The value type a record holds at this index (compared case-insensitively, as type filters are). */
  type: string;
  index: number;
  required: boolean;
  /** Bounds on the data: characters of a `string` value, bytes of a `base64` one. */
  minLength?: number;
  maxLength?: number;
  /** A disabled item is kept (never deleted) but no record following the version may hold it; `required` no longer applies. */
  enabled: boolean;
  description?: string;
}

export interface Template {
  prefix: string;
  version: string;
  description: string;
  items: TemplateItem[];
  /** Bumped by every change; a write checked against one revision commits only if it is still current. */
  revision: number;
  /** Set (for good) by the first write of a record that names the version: it can no longer change. */
  inUse: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A template ready to check records against. */
export interface CompiledTemplate {
  readonly template: Template;
  readonly byIndex: ReadonlyMap<number, TemplateItem>;
  readonly required: readonly TemplateItem[];
}

export function compile(template: Template): CompiledTemplate {
  return {
    template,
    byIndex: new Map(template.items.map((item) => [item.index, item])),
    required: template.items.filter((item) => item.enabled && item.required),
  };
}

export const templateName = (prefix: string, version: string): string => `${prefix}/${version}`;

export type ViolationRule = 'required' | 'unknown' | 'disabled' | 'type' | 'format' | 'minLength' | 'maxLength';

export interface Violation {
  index: number;
  /** The item's name; absent when no item of the template has this index. */
  item?: string;
  rule: ViolationRule;
  message: string;
}

/**
 * The template version a record names at index 1001, or undefined when it names none (the cheap,
 * common case: one pass over the values, nothing else). Throws when the value there cannot be one.
 */
export function templateReference(values: readonly HandleValue[]): string | undefined {
  for (const value of values) {
    if (value.index !== TEMPLATE_INDEX) continue;
    if (value.data.format !== 'string' || typeof value.data.value !== 'string' || !VERSION.test(value.data.value)) {
      throw new AppError(
        'TEMPLATE_REFERENCE_INVALID',
        `the value at index ${TEMPLATE_INDEX} names the record's template version: it must be string data matching ${VERSION_PATTERN}, e.g. "1.0"`,
        400,
        ResponseCode.INVALID_VALUE,
        { index: TEMPLATE_INDEX },
      );
    }
    return value.data.value;
  }
  return undefined;
}

/** Length of a value's data as a template bounds it, or undefined for formats templates do not hold. */
function dataLength(value: HandleValue): number | undefined {
  const data = value.data.value;
  if (typeof data !== 'string') return undefined;
  if (value.data.format === 'string') {
    let n = 0;
    for (const _ of data) n += 1; // code points, not UTF-16 units: 零件 is 2 characters
    return n;
  }
  if (value.data.format === 'base64') return Buffer.byteLength(data, 'base64');
  return undefined;
}

/** Every way the values break the template, in index order, required items last. */
export function violations(compiled: CompiledTemplate, values: readonly HandleValue[]): Violation[] {
  const found: Violation[] = [];
  const present = new Set<number>();
  for (const value of values) {
    if (value.index < FIRST_ITEM_INDEX) continue;
    present.add(value.index);
    const item = compiled.byIndex.get(value.index);
    const at = item ? `item "${item.name}" (index ${value.index})` : `index ${value.index}`;
    if (!item) {
      found.push({ index: value.index, rule: 'unknown', message: `${at} is not an item of the template (indexes from ${FIRST_ITEM_INDEX} belong to it)` });
      continue;
    }
    const base = { index: value.index, item: item.name };
    if (!item.enabled) {
      found.push({ ...base, rule: 'disabled', message: `${at} is disabled: records following this version leave it out` });
      continue;
    }
    if (value.type.toUpperCase() !== item.type.toUpperCase()) {
      found.push({ ...base, rule: 'type', message: `${at} must have type ${item.type}, not ${value.type}` });
      continue;
    }
    const length = dataLength(value);
    if (length === undefined) {
      found.push({ ...base, rule: 'format', message: `${at} holds string or base64 data, not ${value.data.format}` });
    } else if (item.minLength !== undefined && length < item.minLength) {
      found.push({ ...base, rule: 'minLength', message: `${at} is ${length} long; at least ${item.minLength} is required` });
    } else if (item.maxLength !== undefined && length > item.maxLength) {
      found.push({ ...base, rule: 'maxLength', message: `${at} is ${length} long; at most ${item.maxLength} is allowed` });
    }
  }
  for (const item of compiled.required) {
    if (!present.has(item.index)) {
      found.push({ index: item.index, item: item.name, rule: 'required', message: `item "${item.name}" (index ${item.index}, type ${item.type}) is required but missing` });
    }
  }
  return found;
}

/** The write's error: names the template and the first violation, lists them all in details. */
export function violationError(compiled: CompiledTemplate, found: readonly Violation[]): AppError {
  const name = templateName(compiled.template.prefix, compiled.template.version);
  const more = found.length > 1 ? ` (and ${found.length - 1} more)` : '';
  return new AppError('TEMPLATE_VIOLATION', `template ${name}: ${found[0]!.message}${more}`, 400, ResponseCode.INVALID_VALUE, {
    template: name,
    violations: found.map((v) => ({ ...v })),
  });
}

/** The error when a record names a version its prefix does not have. */
export function unknownTemplate(prefix: string, version: string): AppError {
  return new AppError(
    'TEMPLATE_NOT_FOUND',
    `the record names template version ${version} (index ${TEMPLATE_INDEX}), but prefix ${prefix} has no such template`,
    400,
    ResponseCode.INVALID_VALUE,
    { template: templateName(prefix, version), index: TEMPLATE_INDEX },
  );
}

/** Checks a submitted template on its own: unique indexes and names, sane bounds and types. */
export function checkDefinition(items: readonly TemplateItem[]): void {
  const indexes = new Map<number, string>();
  const names = new Map<string, number>();
  for (const item of items) {
    const where = `item "${item.name}" (index ${item.index})`;
    const sameIndex = indexes.get(item.index);
    if (sameIndex !== undefined) throw invalid(`${where}: index ${item.index} is also item "${sameIndex}"`);
    const sameName = names.get(item.name.toLowerCase());
    if (sameName !== undefined) throw invalid(`${where}: the name is also used by index ${sameName}`);
    indexes.set(item.index, item.name);
    names.set(item.name.toLowerCase(), item.index);
    if (CONTROL.test(item.name) || CONTROL.test(item.type)) throw invalid(`${where}: name and type may not contain control characters`);
    if (item.minLength !== undefined && item.maxLength !== undefined && item.minLength > item.maxLength) {
      throw invalid(`${where}: minLength ${item.minLength} is more than maxLength ${item.maxLength}`);
    }
  }
}

const invalid = (message: string) => new AppError('INVALID_TEMPLATE', message, 400);

/** Items of the stored version that a replacement leaves out (items are disabled, never deleted). */
export function droppedItems(stored: readonly TemplateItem[], next: readonly TemplateItem[]): TemplateItem[] {
  const kept = new Set(next.map((item) => item.index));
  return stored.filter((item) => !kept.has(item.index));
}

/** Whether a replacement says exactly what is stored (a repeated PUT changes nothing). */
export function sameDefinition(stored: Pick<Template, 'description' | 'items'>, next: Pick<Template, 'description' | 'items'>): boolean {
  return stored.description === next.description && canonicalItems(stored.items) === canonicalItems(next.items);
}

function canonicalItems(items: readonly TemplateItem[]): string {
  return JSON.stringify(
    [...items]
      .sort((a, b) => a.index - b.index)
      .map((i) => [i.index, i.name, i.type, i.required, i.enabled, i.minLength ?? null, i.maxLength ?? null, i.description ?? null]),
  );
}
