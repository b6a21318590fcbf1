/** Checking records against metadata templates: the pure rules. */
import { describe, expect, it } from 'vitest';
import type { HandleValue } from '../../src/handle/values.js';
import { AppError } from '../../src/infra/errors.js';
import {
  checkDefinition,
  compile,
  droppedItems,
  sameDefinition,
  templateReference,
  violations,
  type Template,
  type TemplateItem,
} from '../../src/registry/templates-check.js';

const item = (index: number, extra: Partial<TemplateItem> = {}): TemplateItem => ({ name: `i${index}`, type: `T${index}`, index, required: false, enabled: true, ...extra });
const template = (items: TemplateItem[]): Template => ({ prefix: '88.118.8', version: '1', description: '', items, revision: 1, inUse: false, createdAt: '', updatedAt: '' });
const value = (index: number, type: string, data: unknown, format = 'string'): HandleValue => ({ index, type, data: { format, value: data } as HandleValue['data'], ttl: 0, timestamp: '' });
const rules = (t: Template, values: HandleValue[]) => violations(compile(t), values).map((v) => [v.index, v.rule]);

describe('templateReference', () => {
  it('reads the version at index 1001, and costs nothing for records without one', () => {
    expect(templateReference([value(1, 'URL', 'https://x'), value(1001, 'TEMPLATE', 'v2.1_b-3')])).toBe('v2.1_b-3');
    expect(templateReference([value(1, 'URL', 'https://x'), value(2001, 'A', 'x')])).toBeUndefined();
  });

  it('refuses a value at 1001 that cannot name a version', () => {
    for (const bad of [value(1001, 'T', ''), value(1001, 'T', 'has space'), value(1001, 'T', '.1'), value(1001, 'T', 'x'.repeat(33)), value(1001, 'T', 'MS4w', 'base64')]) {
      expect(() => templateReference([bad])).toThrow(expect.objectContaining({ code: 'TEMPLATE_REFERENCE_INVALID' }) as AppError);
    }
  });
});

describe('violations', () => {
  const t = template([item(2001, { required: true, minLength: 2, maxLength: 3 }), item(2002, { enabled: false, required: true }), item(2003, { type: 'Bin', maxLength: 4 })]);

  it('passes a record that follows the template, with types compared case-insensitively', () => {
    expect(rules(t, [value(1, 'URL', 'u'), value(2001, 't2001', 'ab')])).toEqual([]);
  });

  it('counts characters of strings (code points) and bytes of base64 data', () => {
    expect(rules(t, [value(2001, 'T2001', '零件号')])).toEqual([]); // 3 characters, 9 UTF-8 bytes
    expect(rules(t, [value(2001, 'T2001', '𠀀𠀀')])).toEqual([]); // 2 code points, 4 UTF-16 units
    expect(rules(t, [value(2001, 'T2001', '零件号码')])).toEqual([[2001, 'maxLength']]);
    expect(rules(t, [value(2001, 'T2001', 'a')])).toEqual([[2001, 'minLength']]);
    expect(rules(t, [value(2001, 'T2001', 'ab'), value(2003, 'BIN', 'AAECAw==', 'base64')])).toEqual([]); // 4 bytes
    expect(rules(t, [value(2001, 'T2001', 'ab'), value(2003, 'BIN', 'AAECAwQ=', 'base64')])).toEqual([[2003, 'maxLength']]);
  });

  it('names every problem: wrong type, other formats, unknown and disabled indexes, missing required items', () => {
    expect(
      rules(t, [value(2001, 'OTHER', 'ab'), value(2003, 'BIN', { x: 1 }, 'site'), value(2002, 'T2002', 'x'), value(2999, 'X', 'x'), value(1999, 'FREE', 'x')]),
    ).toEqual([[2001, 'type'], [2003, 'format'], [2002, 'disabled'], [2999, 'unknown']]);
    // A disabled item is not required; a required one is reported missing, last.
    expect(rules(t, [])).toEqual([[2001, 'required']]);
  });
});

describe('definitions', () => {
  it('refuses duplicate indexes and names, and bounds that cannot both hold', () => {
    expect(() => checkDefinition([item(2001), item(2001, { name: 'other' })])).toThrow(/index 2001 is also item "i2001"/);
    expect(() => checkDefinition([item(2001, { name: 'Lot' }), item(2002, { name: 'lot' })])).toThrow(/name is also used by index 2001/);
    expect(() => checkDefinition([item(2001, { minLength: 3, maxLength: 2 })])).toThrow(/minLength 3 is more than maxLength 2/);
    expect(() => checkDefinition([item(2001, { type: 'A\u0007' })])).toThrow(/control characters/);
    expect(() => checkDefinition([item(2001, { minLength: 2, maxLength: 2 }), item(2002)])).not.toThrow();
  });

  it('finds the items a replacement leaves out, and sees an identical replacement whatever its item order', () => {
    expect(droppedItems([item(2001), item(2002)], [item(2002, { enabled: false })]).map((i) => i.index)).toEqual([2001]);
    expect(droppedItems([item(2001)], [item(2001, { name: 'renamed' }), item(2002)])).toEqual([]);
    const stored = { description: 'd', items: [item(2001), item(2002)] };
    expect(sameDefinition(stored, { description: 'd', items: [item(2002), item(2001)] })).toBe(true);
    expect(sameDefinition(stored, { description: 'd', items: [item(2001), item(2002, { maxLength: 9 })] })).toBe(false);
    expect(sameDefinition(stored, { description: 'e', items: stored.items })).toBe(false);
  });
});
