import { describe, expect, it } from 'vitest';
import { filterValues, typeMatches, visibleValues } from '../../src/handle/filters.js';
import type { HandleValue } from '../../src/handle/values.js';

const v = (index: number, type: string, permissions?: string): HandleValue => ({
  index,
  type,
  data: { format: 'string', value: `${type}-${index}` },
  ttl: 60,
  timestamp: 't',
  ...(permissions ? { permissions } : {}),
});
const record = [v(1, 'URL'), v(2, 'URL.ORG'), v(3, 'EMAIL'), v(4, 'URLX'), v(5, 'url.mirror.cn'), v(100, 'HS_ADMIN')];

describe('type and index filters', () => {
  it('matches types case-insensitively and exactly without a trailing dot', () => {
    expect(typeMatches('url', 'URL')).toBe(true);
    expect(typeMatches('URL', 'URL.ORG')).toBe(false);
    expect(typeMatches('URL', 'URLX')).toBe(false);
  });

  it('matches subtypes for a type ending in a dot', () => {
    expect(filterValues(record, { types: ['URL.'] }).map((x) => x.index)).toEqual([1, 2, 5]);
  });

  it('returns a value matching any filter, types or indexes', () => {
    expect(filterValues(record, { types: ['email'], indexes: [100, 4] }).map((x) => x.index)).toEqual([3, 4, 100]);
    expect(filterValues(record, { indexes: [9] })).toEqual([]);
  });

  it('returns everything without filters', () => {
    expect(filterValues(record, {})).toHaveLength(record.length);
    expect(filterValues(record, { types: [], indexes: [] })).toHaveLength(record.length);
  });

  it('hides values without public read from non-owners', () => {
    const values = [v(1, 'URL'), v(2, 'SECRET', '1100'), v(3, 'PUB', '0010')];
    expect(visibleValues(values, false).map((x) => x.index)).toEqual([1, 3]);
    expect(visibleValues(values, true).map((x) => x.index)).toEqual([1, 2, 3]);
  });
});
