/** GET /{handle}: redirect, query pass-through, HTML for browsers (escaped), JSON for API clients. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let key: string;
const BROWSER = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: false });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(701), '88.118.7'));
  const put = (handle: string, values: unknown[]) => call(node.url, 'PUT', `/api/handles/${handle}`, { key, body: { values } });
  await put('88.118.7/REDIR', [
    { index: 1, type: 'EMAIL', data: { format: 'string', value: 'qa@example.com' } },
    url('https://trace.example.com/p?lot=7#top', 3),
    url('https://second.example.com/', 5),
  ]);
  await put('88.118.7/JS', [url('javascript:alert(1)'), { index: 2, type: 'NAME', data: { format: 'string', value: '<script>alert("x")</script>"><img src=x onerror=alert(1)> 液压阀' } }]);
  await put('88.118.7/NOURL', [{ index: 1, type: 'NAME', data: { format: 'string', value: 'Valve body 阀体' } }]);
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

describe('proxy view', () => {
  it('redirects to the first URL value and passes the query string on', async () => {
    const plain = await call(node.url, 'GET', '/88.118.7/REDIR');
    expect(plain.status).toBe(302);
    expect(plain.headers.get('location')).toBe('https://trace.example.com/p?lot=7#top');
    const withQuery = await call(node.url, 'GET', '/88.118.7/REDIR?utm_source=qr&lang=zh-CN');
    expect(withQuery.status).toBe(302);
    expect(withQuery.headers.get('location')).toBe('https://trace.example.com/p?lot=7&utm_source=qr&lang=zh-CN#top');
    expect(withQuery.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
  });

  it('answers the record with ?noredirect: HTML for browsers, JSON for API clients', async () => {
    const page = await call(node.url, 'GET', '/88.118.7/REDIR?noredirect', { headers: BROWSER });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.text).toContain('<a href="https://trace.example.com/p?lot=7#top"');
    const json = await call(node.url, 'GET', '/88.118.7/REDIR?noredirect');
    expect(json.status).toBe(200);
    expect(json.body).toMatchObject({ responseCode: 1, handle: '88.118.7/REDIR' });
    expect(json.body.values).toHaveLength(4);
  });

  it('never redirects to a non-http URL and escapes hostile values in the page', async () => {
    const page = await call(node.url, 'GET', '/88.118.7/JS', { headers: BROWSER });
    expect(page.status).toBe(200);
    expect(page.text).not.toContain('<script>alert');
    expect(page.text).not.toContain('<img src=x');
    expect(page.text).not.toMatch(/href="javascript:/i);
    expect(page.text).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(page.text).toContain('液压阀');
  });

  it('answers a record without a URL value as a page or JSON, and a missing handle with 404', async () => {
    const page = await call(node.url, 'GET', '/88.118.7/NOURL', { headers: BROWSER });
    expect(page.status).toBe(200);
    expect(page.text).toContain('Valve body 阀体');
    const json = await call(node.url, 'GET', '/88.118.7/NOURL');
    expect(json.body.values[0].data.value).toBe('Valve body 阀体');
    const missingPage = await call(node.url, 'GET', '/88.118.7/NONE', { headers: BROWSER });
    expect(missingPage.status).toBe(404);
    expect(missingPage.headers.get('content-type')).toBe('text/html; charset=utf-8');
    // Accept is negotiated: q=0 refuses HTML, media types are case-insensitive.
    expect((await call(node.url, 'GET', '/88.118.7/NOURL', { headers: { accept: 'application/json, text/html;q=0' } })).body.values[0].data.value).toBe('Valve body 阀体');
    expect((await call(node.url, 'GET', '/88.118.7/NOURL', { headers: { accept: 'TEXT/HTML' } })).headers.get('content-type')).toBe('text/html; charset=utf-8');
    const missingJson = await call(node.url, 'GET', '/88.118.7/NONE');
    expect(missingJson.status).toBe(404);
    expect(missingJson.body).toMatchObject({ responseCode: 100, handle: '88.118.7/NONE' });
  });

  it('keeps the API routes and health checks apart from handle paths', async () => {
    expect((await call(node.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(node.url, 'GET', '/favicon.ico')).status).toBe(404);
  });
});
