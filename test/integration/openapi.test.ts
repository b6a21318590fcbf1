/**
 * The OpenAPI document covers every route the node registers (walked from what fastify
 * registered, so routes added later are covered too): each has a response schema, appears in
 * /docs/json, and its JSON bodies and answers carry examples that match their schemas. The page
 * at /docs loads nothing from outside the node.
 */
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCS_ASSETS, openApiUrl, registerOpenApi, type CatalogRoute } from '../../src/infra/openapi.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let db: TestDatabase;
let node: TestNode;
let doc: Json;

beforeAll(async () => {
  db = await createTestDatabase();
  // Every optional route group on: the top-level role (federation), bench routes, metrics on the API port.
  node = await startTestNode({ databaseUrl: db.url, redis: true, env: { ROLE: 'top-level', BENCH_ROUTES: 'true' } });
  const answer = await call(node.url, 'GET', '/docs/json');
  expect(answer.status).toBe(200);
  doc = answer.body;
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

const SUCCESS = /^[23]/;

/** What is wrong with the catalog against the document: empty when every route is documented. */
function problems(catalog: CatalogRoute[], openapi: Json): string[] {
  const found: string[] = [];
  for (const route of catalog) {
    const name = `${route.method} ${route.url}`;
    const response = route.schema?.response as Json | undefined;
    if (!response || !Object.keys(response).some((s) => SUCCESS.test(s))) {
      found.push(`${name}: no response schema for its answer`);
      continue;
    }
    if (route.method === 'HEAD' || DOCS_ASSETS.includes(route.url)) continue;
    // A route registered as a prefix's "/" is documented once, with its trailing slash.
    const url = openApiUrl(route.url).url;
    const operation = (openapi.paths?.[url] ?? openapi.paths?.[`${url}/`])?.[route.method.toLowerCase()];
    if (!operation) {
      found.push(`${name}: not in the OpenAPI document`);
      continue;
    }
    if (!operation.summary) found.push(`${name}: no summary`);
    for (const [status, answer] of Object.entries(operation.responses as Json)) {
      const json = answer.content?.['application/json'];
      if (json && json.example === undefined && json.examples === undefined) found.push(`${name}: answer ${status} has no example`);
    }
    const body = operation.requestBody?.content?.['application/json'];
    if (body && body.example === undefined && body.examples === undefined) found.push(`${name}: request body has no example`);
  }
  return found;
}

describe('the OpenAPI document', () => {
  it('is OpenAPI 3 and lists every route the node registered, each with a response schema and examples', () => {
    expect(doc.openapi).toMatch(/^3\./);
    const catalog = node.node.app.routeCatalog;
    // The walk is over what fastify registered: sanity-check that it saw the optional groups.
    for (const url of ['/api/handles/*', '/federation/v1/sync', '/bench/seed', '/metrics', '/docs/json', '/dashboard/*', '/*']) {
      expect(catalog.some((r) => r.url === url), url).toBe(true);
    }
    expect(problems(catalog, doc)).toEqual([]);
  });

  it('fails a route that lacks a response schema', async () => {
    const app = Fastify();
    await registerOpenApi(app, '0.0.0');
    app.get('/undocumented', async () => ({ ok: true }));
    app.get('/documented', { schema: { summary: 'A documented route', response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } }, examples: [{ ok: true }] } } } }, async () => ({ ok: true }));
    await app.ready();
    expect(problems(app.routeCatalog, app.swagger() as Json)).toEqual(['GET /undocumented: no response schema for its answer', 'HEAD /undocumented: no response schema for its answer']);
    await app.close();
  });

  it('has examples that match their schemas', () => {
    const ajv = addFormats(new Ajv({ strict: false, allErrors: true }));
    const bad: string[] = [];
    const check = (where: string, schema: Json | undefined, example?: unknown) => {
      if (!schema || (!Array.isArray(schema.examples) && example === undefined)) return;
      const { examples: given, ...rest } = schema;
      const examples = example === undefined ? given : [example];
      const validate = ajv.compile(rest);
      for (const example of examples as unknown[]) {
        if (!validate(example)) bad.push(`${where}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(example).slice(0, 200)}`);
      }
    };
    let checked = 0;
    for (const route of node.node.app.routeCatalog) {
      const name = `${route.method} ${route.url}`;
      const schema = route.schema ?? {};
      const body = schema.body as Json | undefined;
      if (body?.content) for (const [type, media] of Object.entries(body.content as Json)) check(`${name} body ${type}`, media.schema, media.example);
      else check(`${name} body`, body);
      for (const [status, answer] of Object.entries((schema.response ?? {}) as Json)) {
        if (answer.content) for (const [type, media] of Object.entries(answer.content as Json)) check(`${name} ${status} ${type}`, media.schema, media.example);
        else check(`${name} ${status}`, answer);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect(bad).toEqual([]);
  });

  it('names handles as a path parameter and says who may call each route', () => {
    const get = doc.paths['/api/handles/{handle}'].get;
    expect(get.parameters.some((p: Json) => p.in === 'path' && p.name === 'handle')).toBe(true);
    expect(get.description).toContain('anyone');
    expect(doc.paths['/api/handles/{handle}'].put.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths['/api/admin/keys'].post.description).toContain('admin keys');
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(Object.keys(doc.paths['/api/handles/{handle}'].put.responses)).toEqual(expect.arrayContaining(['200', '201', '400', '401', '403', '409', '412', '4XX', '5XX']));
  });
});

describe('the documentation page', () => {
  it('is served by the node itself, with no script or style from elsewhere', async () => {
    const page = await call(node.url, 'GET', '/docs/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const sources = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) expect(source, source).not.toMatch(/^(https?:)?\/\//);
    const bundle = await call(node.url, 'GET', '/docs/static/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    expect((await call(node.url, 'GET', '/docs/static/no-such-file.js')).status).toBe(404);
    const yaml = await call(node.url, 'GET', '/docs/yaml');
    expect(yaml.text).toMatch(/^openapi: 3\./);
  });
});
