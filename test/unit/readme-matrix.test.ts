/** README's "Who may do what" table and the matrix the node enforces (src/tenancy/access.ts) agree on every route. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ACCESS_MATRIX } from '../../src/tenancy/access.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README authorisation matrix', () => {
  it('names every public API route of the matrix', () => {
    const documented = readme.slice(readme.indexOf('### Who may do what'), readme.indexOf('### Rate limits'));
    for (const route of Object.keys(ACCESS_MATRIX)) {
      if (route.includes('/bench/') || route.startsWith('GET /dashboard/') || route.startsWith('GET /docs/static/') || route === 'GET /api/audit/') continue;
      const [method, path] = route.split(' ') as [string, string];
      const shown = path.replace('/*', '/{handle}').replace(/:(\w+)/g, '{$1}').replace('/api/admin/', '/api/admin/*').replace(/\/api\/admin\/\*.*/, '/api/admin/*').replace(/\/api\/stats\/.*/, '/api/stats/*').replace('GET /*', '');
      const label = path === '/*' ? 'GET /{handle}' : path.startsWith('/api/admin/') ? '/api/admin/*' : `${method} ${shown}`;
      const found = documented.includes(label) || documented.includes(`\`${method}\``) && documented.includes(shown.replace(/^\//, ''));
      expect(found, `${route} (as ${label})`).toBe(true);
    }
  });

  it('lets no anonymous caller write, read the audit log or administer, as the README says', () => {
    for (const [route, entry] of Object.entries(ACCESS_MATRIX)) {
      if (/^(PUT|DELETE|PATCH) /.test(route) || route.includes('/api/admin/') || route.includes('/api/audit')) {
        expect(entry.who, route).not.toContain('anonymous');
      }
    }
  });
});
