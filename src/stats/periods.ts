/** Calendar arithmetic for statistics: days in a time zone, periods, buckets. Pure, no I/O. */
import { AppError } from '../infra/errors.js';

/** A calendar day as `YYYY-MM-DD`. */
export type Day = string;
export type Granularity = 'day' | 'month' | 'quarter';

/**
 * A date or period a caller gave that is not one: 400 INVALID_PERIOD wherever it surfaces (the
 * routes name it more precisely where they can).
 */
export class PeriodError extends AppError {
  constructor(message: string) {
    super('INVALID_PERIOD', message, 400);
  }
}

/**
 * Years the statistics know. Date.UTC reads years 0-99 as 1900-1999, and a day past 9999-12-31
 * prints as "+010000-01-01", which sorts before every real day: both once ended in a 500 or a
 * loop that never met its end.
 */
const FIRST_YEAR = 1900;
const LAST_YEAR = 9998;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws PeriodError for a time zone the runtime does not know. */
export function checkTimeZone(timeZone: string): void {
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone });
  } catch {
    throw new PeriodError(`unknown time zone ${JSON.stringify(timeZone)}; use an IANA name such as Asia/Shanghai`);
  }
}

/**
 * The calendar day of an instant in a time zone. The last answer per zone is kept for its minute:
 * every write asks (statistics count it on its day), and formatting a date is microseconds.
 * Zones change day on a minute boundary (offsets are whole minutes).
 */
export function dayIn(timeZone: string, at: Date = new Date()): Day {
  const minute = Math.floor(at.getTime() / 60_000);
  const last = lastDays.get(timeZone);
  if (last !== undefined && last.minute === minute) return last.day;
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(timeZone, format);
  }
  const day = format.format(at);
  lastDays.set(timeZone, { minute, day });
  return day;
}

const lastDays = new Map<string, { minute: number; day: Day }>();

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

function parts(day: Day): [number, number, number] {
  const m = DAY.exec(day);
  if (!m) throw new PeriodError(`${JSON.stringify(day)} is not a date (YYYY-MM-DD)`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < FIRST_YEAR || y > LAST_YEAR) throw new PeriodError(`${day}: years ${FIRST_YEAR} to ${LAST_YEAR} only`);
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) {
    throw new PeriodError(`${day} is not a calendar date`);
  }
  return [y, mo, d];
}

function fromUtc(date: Date): Day {
  return date.toISOString().slice(0, 10);
}

export function parseDay(day: string): Day {
  parts(day);
  return day;
}

export function addDays(day: Day, n: number): Day {
  const [y, m, d] = parts(day);
  return fromUtc(new Date(Date.UTC(y, m - 1, d + n)));
}

/** How many buckets bucketsBetween would give, without making them (a range is checked against a cap first). */
export function bucketCount(from: Day, to: Day, granularity: Granularity): number {
  const [y1, m1, d1] = parts(from);
  const [y2, m2, d2] = parts(to);
  if (granularity === 'day') return Math.round((Date.UTC(y2, m2 - 1, d2) - Date.UTC(y1, m1 - 1, d1)) / 86_400_000) + 1;
  if (granularity === 'month') return (y2 - y1) * 12 + (m2 - m1) + 1;
  return (y2 - y1) * 4 + (Math.floor((m2 - 1) / 3) - Math.floor((m1 - 1) / 3)) + 1;
}

export function monthStart(day: Day): Day {
  return `${day.slice(0, 7)}-01`;
}

export function addMonths(day: Day, n: number): Day {
  const [y, m] = parts(day);
  return fromUtc(new Date(Date.UTC(y, m - 1 + n, 1)));
}

export function quarterStart(day: Day): Day {
  const [y, m] = parts(day);
  return fromUtc(new Date(Date.UTC(y, Math.floor((m - 1) / 3) * 3, 1)));
}

/** The bucket a day falls in, and the bucket's label (`2026-11-29`, `2026-11`, `2026-Q4`). */
export function bucketOf(day: Day, granularity: Granularity): { start: Day; label: string } {
  if (granularity === 'day') return { start: day, label: day };
  if (granularity === 'month') return { start: monthStart(day), label: day.slice(0, 7) };
  const start = quarterStart(day);
  return { start, label: `${start.slice(0, 4)}-Q${Math.floor((Number(start.slice(5, 7)) - 1) / 3) + 1}` };
}

/** Every bucket from the one holding `from` to the one holding `to`, in order. */
export function bucketsBetween(from: Day, to: Day, granularity: Granularity): Array<{ start: Day; label: string }> {
  const out: Array<{ start: Day; label: string }> = [];
  let cursor = bucketOf(from, granularity).start;
  const step = granularity === 'day' ? (d: Day) => addDays(d, 1) : granularity === 'month' ? (d: Day) => addMonths(d, 1) : (d: Day) => addMonths(d, 3);
  while (cursor <= to) {
    out.push(bucketOf(cursor, granularity));
    cursor = step(cursor);
  }
  return out;
}

export interface Period {
  /** As asked: `2026`, `2026-Q3`, `2026-11` or `2026-11-29`. */
  label: string;
  from: Day;
  /** Inclusive. */
  to: Day;
}

/** `2026`, `2026-Q3`, `2026-11` or `2026-11-29` as a day range. */
export function parsePeriod(label: string): Period {
  let m = /^(\d{4})$/.exec(label);
  if (m) return { label, from: parseDay(`${m[1]}-01-01`), to: `${m[1]}-12-31` };
  m = /^(\d{4})-Q([1-4])$/i.exec(label);
  if (m) {
    const from = parseDay(`${m[1]}-${String((Number(m[2]) - 1) * 3 + 1).padStart(2, '0')}-01`);
    return { label: label.toUpperCase(), from, to: addDays(addMonths(from, 3), -1) };
  }
  m = /^(\d{4})-(\d{2})$/.exec(label);
  if (m) {
    const from = `${label}-01`;
    parts(from);
    return { label, from, to: addDays(addMonths(from, 1), -1) };
  }
  if (DAY.test(label)) return { label, from: parseDay(label), to: label };
  throw new PeriodError(`period ${JSON.stringify(label)} is not YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD`);
}

export type Grain = 'd' | 'm' | 'q' | 'y';

/** The bucket start of a day at a grain: the day, or the first day of its month, quarter or year. */
export function grainStart(day: Day, grain: Grain): Day {
  if (grain === 'd') return day;
  if (grain === 'm') return monthStart(day);
  if (grain === 'q') return quarterStart(day);
  return `${day.slice(0, 4)}-01-01`;
}

function grainEnd(start: Day, grain: Grain): Day {
  if (grain === 'd') return start;
  return addDays(addMonths(start, grain === 'm' ? 1 : grain === 'q' ? 3 : 12), -1);
}

/**
 * A day range covered by the fewest rollup buckets: whole years, then quarters, months and days
 * at the edges. Each run is a grain and the first and last bucket start it takes, so a year is
 * one row per prefix and a quarter one row, not 365 or 92 daily ones.
 */
export function coverRange(from: Day, to: Day): Array<{ grain: Grain; from: Day; to: Day }> {
  const runs: Array<{ grain: Grain; from: Day; to: Day }> = [];
  let cursor = from;
  while (cursor <= to) {
    const grain = (['y', 'q', 'm'] as const).find((g) => grainStart(cursor, g) === cursor && grainEnd(cursor, g) <= to) ?? 'd';
    const last = runs[runs.length - 1];
    if (last && last.grain === grain) last.to = cursor;
    else runs.push({ grain, from: cursor, to: cursor });
    cursor = addDays(grainEnd(cursor, grain), 1);
  }
  return runs;
}
