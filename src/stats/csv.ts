/** The period report as CSV: UTF-8 with a BOM, so spreadsheet programs show Chinese names. */

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

/** RFC 4180 quoting; a leading = + - @ is prefixed so a spreadsheet never runs it as a formula. */
function cell(value: string | number): string {
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function reportCsv(rows: readonly Row[]): string {
  const lines = [COLUMNS.map(([, header]) => header).join(',')];
  for (const row of rows) lines.push(COLUMNS.map(([key]) => cell(row[key])).join(','));
  return `\uFEFF${lines.join('\r\n')}\r\n`;
}
