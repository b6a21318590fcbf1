import { describe, expect, it } from 'vitest';
import { bucketOf, bucketsBetween, dayIn, parsePeriod, splitRange } from '../../src/stats/periods.js';

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
  });

  it('labels buckets and lists them across a year end', () => {
    expect(bucketOf('2026-11-29', 'quarter')).toEqual({ start: '2026-10-01', label: '2026-Q4' });
    expect(bucketsBetween('2026-11-15', '2027-02-03', 'quarter').map((b) => b.label)).toEqual(['2026-Q4', '2027-Q1']);
    expect(bucketsBetween('2026-12-30', '2027-01-02', 'day').map((b) => b.label)).toEqual(['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
    expect(bucketsBetween('2026-11-30', '2027-01-01', 'month').map((b) => b.label)).toEqual(['2026-11', '2026-12', '2027-01']);
  });

  it('splits a range into whole months and the days around them', () => {
    expect(splitRange('2026-07-01', '2026-09-30')).toEqual({ months: { from: '2026-07-01', to: '2026-09-30' }, days: [] });
    expect(splitRange('2026-06-20', '2026-09-03')).toEqual({
      months: { from: '2026-07-01', to: '2026-08-31' },
      days: [{ from: '2026-06-20', to: '2026-06-30' }, { from: '2026-09-01', to: '2026-09-03' }],
    });
    expect(splitRange('2026-11-03', '2026-11-20')).toEqual({ days: [{ from: '2026-11-03', to: '2026-11-20' }] });
    expect(splitRange('2026-12-15', '2027-01-31')).toEqual({ months: { from: '2027-01-01', to: '2027-01-31' }, days: [{ from: '2026-12-15', to: '2026-12-31' }] });
  });
});
