import { describe, expect, it } from 'vitest';
import { bucketCount, bucketOf, bucketsBetween, coverRange, dayIn, parsePeriod } from '../../src/stats/periods.js';

describe('statistics periods', () => {
  it('takes the calendar day in the node time zone, not in UTC', () => {
    const newYearInShanghai = new Date('2026-12-31T16:30:00Z');
    expect(dayIn('Asia/Shanghai', newYearInShanghai)).toBe('2027-01-01');
    expect(dayIn('UTC', newYearInShanghai)).toBe('2026-12-31');
    expect(dayIn('Asia/Shanghai', new Date('2026-03-31T15:59:59Z'))).toBe('2026-03-31');
    expect(dayIn('Asia/Shanghai', new Date('2026-03-31T16:00:00Z'))).toBe('2026-04-01');
  });

  it('parses years, quarters, months and days', () => {
    expect(parsePeriod('2026')).toEqual({ label: '2026', from: '2026-01-01', to: '2026-12-31' });
    expect(parsePeriod('2026-Q3')).toEqual({ label: '2026-Q3', from: '2026-07-01', to: '2026-09-30' });
    expect(parsePeriod('2026-q4')).toEqual({ label: '2026-Q4', from: '2026-10-01', to: '2026-12-31' });
    expect(parsePeriod('2028-02')).toEqual({ label: '2028-02', from: '2028-02-01', to: '2028-02-29' });
    expect(parsePeriod('2026-11-29')).toEqual({ label: '2026-11-29', from: '2026-11-29', to: '2026-11-29' });
    for (const bad of ['2026-Q5', '2026-13', '2026-02-30', 'last month', '']) expect(() => parsePeriod(bad), bad).toThrow();
    // Years Date.UTC misreads (0-99) or whose next day cannot be written as YYYY-MM-DD.
    for (const bad of ['0000', '0050', '0050-Q1', '0099-12', '9999', '9999-Q4', '9999-12-31']) expect(() => parsePeriod(bad), bad).toThrow(/years 1900 to 9998/);
  });

  it('counts buckets without making them, as bucketsBetween would', () => {
    const ranges: Array<[string, string]> = [['2026-11-15', '2027-02-03'], ['2026-12-30', '2027-01-02'], ['2024-02-28', '2024-03-01'], ['2026-01-01', '2026-01-01'], ['2020-03-31', '2026-10-01']];
    for (const [from, to] of ranges) {
      for (const g of ['day', 'month', 'quarter'] as const) expect(bucketCount(from, to, g), `${from} ${to} ${g}`).toBe(bucketsBetween(from, to, g).length);
    }
  });

  it('labels buckets and lists them across a year end', () => {
    expect(bucketOf('2026-11-29', 'quarter')).toEqual({ start: '2026-10-01', label: '2026-Q4' });
    expect(bucketsBetween('2026-11-15', '2027-02-03', 'quarter').map((b) => b.label)).toEqual(['2026-Q4', '2027-Q1']);
    expect(bucketsBetween('2026-12-30', '2027-01-02', 'day').map((b) => b.label)).toEqual(['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
    expect(bucketsBetween('2026-11-30', '2027-01-01', 'month').map((b) => b.label)).toEqual(['2026-11', '2026-12', '2027-01']);
  });

  it('covers a range with the fewest rollup buckets', () => {
    expect(coverRange('2026-07-01', '2026-09-30')).toEqual([{ grain: 'q', from: '2026-07-01', to: '2026-07-01' }]);
    expect(coverRange('2025-01-01', '2026-12-31')).toEqual([{ grain: 'y', from: '2025-01-01', to: '2026-01-01' }]);
    expect(coverRange('2026-06-20', '2026-11-03')).toEqual([
      { grain: 'd', from: '2026-06-20', to: '2026-06-30' },
      { grain: 'q', from: '2026-07-01', to: '2026-07-01' },
      { grain: 'm', from: '2026-10-01', to: '2026-10-01' },
      { grain: 'd', from: '2026-11-01', to: '2026-11-03' },
    ]);
    expect(coverRange('2026-11-03', '2026-11-20')).toEqual([{ grain: 'd', from: '2026-11-03', to: '2026-11-20' }]);
    expect(coverRange('2026-12-15', '2027-02-28')).toEqual([
      { grain: 'd', from: '2026-12-15', to: '2026-12-31' },
      { grain: 'm', from: '2027-01-01', to: '2027-02-01' },
    ]);
    expect(coverRange('2026-12-02', '2026-12-01')).toEqual([]);
  });
});
