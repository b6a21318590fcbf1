/** The period report as CSV: UTF-8 with a BOM, so spreadsheet programs show Chinese names. */
import { csvCell } from '../infra/csv-cell.js';

const COLUMNS = [
  ['enterprise', 'enterprise'],
  ['uscc', 'uscc'],
  ['prefix', 'prefix'],
  ['prefixState', 'prefix_state'],
  ['identifiers', 'identifiers_at_period_end'],
  ['creates', 'registrations'],
  ['updates', 'updates'],
  ['deletes', 'deletions'],
  ['resolutionsFound', 'resolutions_found'],
  ['resolutionsNotFound', 'resolutions_not_found'],
  ['resolutionsCached', 'resolutions_from_cache'],
  ['resolutionsTotal', 'resolutions_total'],
] as const;

type Row = { [K in (typeof COLUMNS)[number][0]]: string | number };


export function reportCsv(rows: readonly Row[]): string {
  const lines = [COLUMNS.map(([, header]) => header).join(',')];
  for (const row of rows) lines.push(COLUMNS.map(([key]) => csvCell(row[key])).join(','));
  return `\uFEFF${lines.join('\r\n')}\r\n`;
}
