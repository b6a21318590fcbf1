/**
 * The auditors' dashboard: GET /dashboard/ and its static files, plus the chart library from
 * node_modules at /dashboard/vendor/. The page talks to /api/stats/* with the key the auditor
 * types in; these routes need no key and read nothing but memory.
 *
 * The handful of files is read into memory when the plugin registers, so a missing file stops
 * the node at start rather than failing a request, and a request path is only ever a key in a
 * map built from the folder's own listing: nothing the client sends reaches the file system.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../infra/errors.js';

// Two levels below the repository root both as src/stats/*.ts (tests) and dist/stats/*.js (built).
const PAGE_DIR = fileURLToPath(new URL('../../src/stats/dashboard/', import.meta.url));

const VENDOR: Record<string, string> = {
  'uPlot.iife.min.js': 'uplot/dist/uPlot.iife.min.js',
  'uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

// No inline script or style anywhere: uPlot sizes its elements through the CSSOM (element.style),
// which style-src does not govern. The report download is a blob: URL the page itself creates.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  // Files change with a deploy and their names carry no version: always revalidate (ETag -> 304).
  'cache-control': 'no-cache',
};

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

function staticFile(body: Buffer, name: string): StaticFile {
  const type = TYPES[path.extname(name).toLowerCase()];
  if (!type) throw new Error(`dashboard: no content type for ${name}`);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, type, etag };
}

/** Every file of the dashboard folder (not recursive) and the vendored chart library, by URL path. */
async function loadDashboardFiles(): Promise<Map<string, StaticFile>> {
  const files = new Map<string, StaticFile>();
  for (const entry of await readdir(PAGE_DIR, { withFileTypes: true })) {
    if (!entry.isFile() || !TYPES[path.extname(entry.name).toLowerCase()]) continue;
    files.set(entry.name, staticFile(await readFile(path.join(PAGE_DIR, entry.name)), entry.name));
  }
  if (!files.has('index.html')) throw new Error(`dashboard: ${PAGE_DIR}index.html is missing`);
  const require = createRequire(import.meta.url);
  for (const [name, specifier] of Object.entries(VENDOR)) {
    files.set(`vendor/${name}`, staticFile(await readFile(require.resolve(specifier)), name));
  }
  return files;
}

function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === `W/${etag}`;
  });
}

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  reply.headers(SECURITY_HEADERS).header('etag', file.etag);
  if (matches(request.headers['if-none-match'], file.etag)) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

export function dashboardRoutes(): FastifyPluginAsync {
  return async (app) => {
    const files = await loadDashboardFiles();
    const index = files.get('index.html') as StaticFile;

    // The page's links are relative, so it must be addressed as a folder.
    app.get('/dashboard', {
      schema: { response: { 301: { description: 'To /dashboard/ (the query string kept).', type: 'null' } } },
    }, async (request, reply) => {
      const question = request.url.indexOf('?');
      return reply.redirect(`/dashboard/${question >= 0 ? request.url.slice(question) : ''}`, 301);
    });

    app.get<{ Params: { '*': string } }>('/dashboard/*', {
      schema: {
        params: { type: 'object', properties: { '*': { type: 'string', maxLength: 256 } }, required: ['*'] },
        response: {
          200: {
            description: 'The page (index.html for /dashboard/), its script, style sheet and the chart library. ETag; Cache-Control: no-cache.',
            content: {
              'text/html': { schema: { type: 'string', examples: ['<!DOCTYPE html><html lang="zh-CN">...'] } },
              '*/*': { schema: { type: 'string', format: 'binary' } },
            },
          },
          304: { description: 'Not modified (If-None-Match names the current ETag).', type: 'null' },
        },
      },
    }, async (request, reply) => {
      const name = request.params['*'];
      const file = name === '' ? index : files.get(name);
      if (!file) throw errors.notFound('ROUTE_NOT_FOUND', `no dashboard file at /dashboard/${name}`);
      return send(request, reply, file);
    });
  };
}
