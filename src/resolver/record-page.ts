/**
 * The HTML page of a record for browsers (`GET /{handle}?noredirect`, or a record without a
 * URL value). Everything taken from the record is untrusted input: every piece of it goes
 * through escapeHtml, and only http(s) URLs ever become links.
 */
import type { HandleValue } from '../handle/values.js';

export interface RecordPageOptions {
  /** This node's id, shown in the footer so a reader knows which node answered. */
  nodeId: string;
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text made safe for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch] ?? ch);
}

// CJK fonts are listed so Chinese values render with Simplified Chinese glyphs.
const STYLE = `
body{margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1f2328;background:#fff;
font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",sans-serif}
h1{font-size:1.4rem;word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d0d7de;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.data{word-break:break-all}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:#656d76}
footer{margin-top:1.5rem;font-size:.85rem}
`.trim();

function page(title: string, body: string, options: RecordPageOptions): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
<footer class="muted">Resolved by snode node ${escapeHtml(options.nodeId)}</footer>
</body>
</html>
`;
}

/** The href for a URL value when it is an absolute http(s) URL; undefined otherwise. */
function safeHttpUrl(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  // Checked on the parsed URL, whose href is what the browser will follow.
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
}

function renderData(value: HandleValue): string {
  const { format, value: data } = value.data;
  if (typeof data === 'string') {
    if (format === 'string') {
      const href = value.type.toUpperCase() === 'URL' ? safeHttpUrl(data) : undefined;
      if (href !== undefined) return `<a href="${escapeHtml(href)}" rel="nofollow noopener noreferrer">${escapeHtml(data)}</a>`;
      return escapeHtml(data);
    }
    // base64 and key: shown as the text they are, in a fixed-width font.
    return `<code>${escapeHtml(data)}</code>`;
  }
  return `<pre>${escapeHtml(JSON.stringify(data, null, 2) ?? '')}</pre>`;
}

function renderRow(value: HandleValue): string {
  return (
    `<tr><td>${escapeHtml(String(value.index))}</td><td>${escapeHtml(value.type)}</td>` +
    `<td class="data">${renderData(value)}</td>` +
    `<td>${escapeHtml(String(value.ttl))}</td><td>${escapeHtml(value.timestamp)}</td></tr>`
  );
}

/** A self-contained HTML5 page (inline CSS, no scripts, nothing external) listing a record. */
export function renderRecordPage(record: { handle: string; values: HandleValue[] }, options: RecordPageOptions): string {
  const rows = record.values.map(renderRow).join('\n');
  const table =
    record.values.length === 0
      ? '<p class="muted">This record has no values visible to you.</p>'
      : `<table>
<thead><tr><th>Index</th><th>Type</th><th>Data</th><th>TTL (s)</th><th>Timestamp</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>`;
  return page(record.handle, `<h1>${escapeHtml(record.handle)}</h1>\n${table}`, options);
}

/** The page for a handle that does not exist (sent with HTTP 404). */
export function renderNotFoundPage(handle: string, options: RecordPageOptions): string {
  return page(handle, `<h1>${escapeHtml(handle)}</h1>\n<p>Handle not found.</p>`, options);
}
