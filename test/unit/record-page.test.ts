import { describe, expect, it } from 'vitest';
import type { HandleValue } from '../../src/handle/values.js';
import { escapeHtml, renderNotFoundPage, renderRecordPage } from '../../src/resolver/record-page.js';

const ts = '2026-11-29T00:00:00.000Z';
const options = { nodeId: 'node-1' };
const str = (index: number, type: string, value: string): HandleValue => ({ index, type, data: { format: 'string', value }, ttl: 86400, timestamp: ts });

/** The href of every link on the page. */
const hrefs = (html: string) => [...html.matchAll(/<a\s[^>]*href="([^"]*)"/g)].map((m) => m[1]);

describe('escapeHtml', () => {
  it('escapes the five HTML-special characters and leaves the rest', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
    expect(escapeHtml('工业互联网 plain')).toBe('工业互联网 plain');
  });
});

describe('record page', () => {
  it('is a self-contained UTF-8 HTML5 document titled with the handle', () => {
    const html = renderRecordPage({ handle: '88.118.8/产品-1', values: [str(1, 'URL', 'https://example.com/')] }, options);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<meta charset="utf-8">');
    expect(html).toContain('<title>88.118.8/产品-1</title>');
    expect(html).not.toMatch(/<script|<link|<img|<iframe|src=/i);
    expect(html).toContain('node-1');
  });

  it('links http and https URL values, and only those', () => {
    const html = renderRecordPage(
      {
        handle: '88.118.8/X',
        values: [
          str(1, 'URL', 'https://example.com/a?b=1&c=2'),
          str(2, 'url', 'http://example.com/'),
          str(3, 'URL', 'javascript:alert(1)'),
          str(4, 'URL', ' JavaScript:alert(1)'),
          str(5, 'URL', 'data:text/html,<script>alert(1)</script>'),
          str(6, 'URL', 'ftp://example.com/file'),
          str(7, 'URL', 'not a url'),
          str(8, 'EMAIL', 'https://looks-like-a-url.example/'),
        ],
      },
      options,
    );
    expect(hrefs(html)).toEqual(['https://example.com/a?b=1&amp;c=2', 'http://example.com/']);
    expect(html).toContain('<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener noreferrer">');
    expect(html).toContain('javascript:alert(1)'); // shown as text
    expect(html).toContain('ftp://example.com/file');
    expect(html).toContain('data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toMatch(/href="\s*(javascript|data):/i);
  });

  it('escapes hostile text everywhere it appears', () => {
    const hostile = '"><img src=x onerror=alert(1)>';
    const html = renderRecordPage(
      {
        handle: `88.118.8/<script>alert(1)</script>`,
        values: [
          str(1, '<script>alert(1)</script>', '<script>alert("x")</script>'),
          str(2, 'URL', `https://example.com/${hostile}`),
          { index: 3, type: 'T', data: { format: 'site', value: { name: "</pre><script>alert('s')</script>" } }, ttl: 1, timestamp: hostile },
          { index: 4, type: 'K', data: { format: 'key', value: hostile }, ttl: 1, timestamp: ts },
        ],
      },
      { nodeId: '<b>node</b>' },
    );
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>');
    expect(html).not.toContain('"><img');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('&lt;/pre&gt;&lt;script&gt;alert(&#39;s&#39;)&lt;/script&gt;');
    // The link target is the parsed URL: quotes and brackets percent-encoded, never raw.
    for (const href of hrefs(html)) expect(href).not.toMatch(/[<>"']/);
  });

  it('shows each format in its own way, Chinese included', () => {
    const html = renderRecordPage(
      {
        handle: '88.118.8/零件',
        values: [
          str(1, 'DESC', '工业互联网标识解析二级节点'),
          { index: 2, type: 'BLOB', data: { format: 'base64', value: 'aGVsbG8=' }, ttl: 0, timestamp: ts },
          { index: 3, type: 'HS_VLIST', data: { format: 'vlist', value: [{ handle: '88.118.8/甲', index: 300 }] }, ttl: 60, timestamp: ts },
          { index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { handle: '0.NA/88.118.8', index: 200, permissions: '011111110011' } }, ttl: 86400, timestamp: ts },
        ],
      },
      options,
    );
    expect(html).toContain('<td class="data">工业互联网标识解析二级节点</td>');
    expect(html).toContain('<code>aGVsbG8=</code>');
    expect(html).toContain('<pre>[\n  {\n    &quot;handle&quot;: &quot;88.118.8/甲&quot;,\n    &quot;index&quot;: 300\n  }\n]</pre>');
    expect(html).toContain('&quot;permissions&quot;: &quot;011111110011&quot;');
    expect(html).toContain(`<td>86400</td><td>${ts}</td>`);
    expect(html).toContain('<td>0</td>');
    expect(Buffer.from(html, 'utf8').toString('utf8')).toContain('零件');
  });

  it('says so when no values are visible', () => {
    const html = renderRecordPage({ handle: '88.118.8/X', values: [] }, options);
    expect(html).not.toContain('<table>');
    expect(html).toContain('no values');
  });
});

describe('not-found page', () => {
  it('names the handle, escaped', () => {
    const html = renderNotFoundPage('88.118.8/<script>"未找到"', options);
    expect(html).toContain('<title>88.118.8/&lt;script&gt;&quot;未找到&quot;</title>');
    expect(html).toContain('Handle not found');
    expect(html).not.toContain('<script');
  });
});
