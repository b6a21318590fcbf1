/**
 * The OpenAPI 3 document (@fastify/swagger) at /docs/json (and /docs/yaml), generated from the
 * route schemas, and the interactive page (@fastify/swagger-ui, which ships swagger-ui's files:
 * nothing is loaded from the internet) at /docs.
 *
 * Generic, so a new route is documented by being registered: as each route is registered, its
 * summary, tags and security come from the authorisation matrix (access.ts), every error status
 * gets the one shared error body of its URL's style (Handle-style under /api/handles, generic
 * elsewhere) with an example, and examples kept in api-examples.ts are attached to its body and
 * answers. The same hook records every route (`app.routeCatalog`), so a test can check that
 * each one has a response schema and appears in the document.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { ACCESS_MATRIX, type Caller } from '../tenancy/access.js';
import { BODY_EXAMPLES, RESPONSE_EXAMPLES } from './api-examples.js';
import { errorExample, ErrorBody, HandleErrorBody, handleErrorExample } from './http-schemas.js';

type JsonSchema = Record<string, unknown>;
type Responses = Record<string, JsonSchema>;

export interface CatalogRoute {
  method: string;
  url: string;
  schema: JsonSchema | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route as registered, with its final schema (the OpenAPI test walks it). */
    routeCatalog: CatalogRoute[];
  }
}

/** Routes of the documentation page itself that stay out of the document: its assets. */
export const DOCS_ASSETS = ['/docs/static/*', '/docs/static/index.html', '/docs/static/swagger-initializer.js'];

const BINARY = { type: 'string', format: 'binary' };
const text = (type: string, description: string, example?: string) => ({
  description,
  content: { [type]: { schema: { type: 'string', ...(example === undefined ? {} : { examples: [example] }) } } },
});

/** Schemas for the routes @fastify/swagger-ui registers (it gives them none). */
function docsRouteSchema(url: string): JsonSchema | undefined {
  switch (url) {
    case '/docs':
    case '/docs/':
      return { response: { 200: text('text/html', 'The interactive API page (Swagger UI, served by the node itself).', '<!DOCTYPE html>...') } };
    case '/docs/json':
      return {
        response: {
          200: {
            description: 'This OpenAPI 3 document.',
            content: { 'application/json': { schema: { type: 'object', additionalProperties: true, examples: [{ openapi: '3.0.3', info: { title: 'snode', version: '0.1.0' }, paths: {} }] } } },
          },
        },
      };
    case '/docs/yaml':
      return { response: { 200: text('application/x-yaml', 'This OpenAPI 3 document in YAML.', "openapi: 3.0.3\ninfo:\n  title: snode\n") } };
    case '/docs/static/index.html':
      return { hide: true, response: { 302: { description: 'To /docs/.', type: 'null' } } };
    case '/docs/static/swagger-initializer.js':
      return { hide: true, response: { 200: text('application/javascript', 'The page script that loads ./json.') } };
    case '/docs/static/*':
      return { hide: true, response: { 200: { description: 'A file of Swagger UI.', content: { '*/*': { schema: BINARY } } }, 304: { description: 'Not modified.', type: 'null' } } };
    default:
      return undefined;
  }
}

const ERROR_DESCRIPTIONS: Record<string, string> = {
  400: 'Invalid request (body, query, parameters or handle).',
  401: 'No API key, or the key is unknown, revoked or expired.',
  403: "The key's role or prefixes do not allow this.",
  404: 'Not found.',
  409: 'Conflict with the current state.',
  412: 'If-Match names another version.',
  413: 'The body is larger than the limit.',
  415: 'Unsupported Content-Type.',
  429: 'Rate limit exceeded (Retry-After says when to try again).',
  '4xx': 'Any other refusal: the same error body.',
  '5xx': 'Internal error (500, the message only asks to quote the request id) or the database is unavailable (503, retry).',
};

/** The shared error body of a URL, with a description and an example for the status. */
function errorSchema(handleStyle: boolean, status: string): JsonSchema {
  const base = (handleStyle ? HandleErrorBody : ErrorBody) as unknown as JsonSchema;
  return { ...base, description: ERROR_DESCRIPTIONS[status] ?? 'Error.', examples: [handleStyle ? handleErrorExample(status) : errorExample(status)] };
}

/** `/api/handles/*` -> `/api/handles/{handle}`: OpenAPI has no wildcard. */
export function openApiUrl(registered: string): { url: string; param: string | undefined } {
  const url = registered.replace(/:(\w+)/g, '{$1}');
  if (!url.endsWith('*')) return { url, param: undefined };
  const param = url === '/*' || url.startsWith('/api/handles/') || url.startsWith('/bench/ceiling/') ? 'handle' : 'path';
  return { url: `${url.slice(0, -1)}{${param}}`, param };
}

/**
 * OpenAPI 3.0 wants a media type's example beside its schema, not `examples` inside it (fastify
 * reads only `schema`, so the example can move out of it).
 */
function mediaExamples(answer: JsonSchema): JsonSchema {
  const content = answer.content as Record<string, { schema?: JsonSchema; example?: unknown }> | undefined;
  if (!content) return answer;
  const moved: Record<string, unknown> = {};
  for (const [type, media] of Object.entries(content)) {
    const examples = media.schema?.examples;
    if (!media.schema || !Array.isArray(examples)) {
      moved[type] = media;
      continue;
    }
    const { examples: _e, ...schema } = media.schema;
    moved[type] = { ...media, schema, example: examples[0] };
  }
  return { ...answer, content: moved };
}

const TAGS: Array<[RegExp, string]> = [
  [/^\/api\/handles\/?\*?$|^\/api\/resolve$|^\/\*$/, 'resolution'],
  [/^\/api\/(handles|imports)/, 'registration'],
  [/^\/api\/templates/, 'templates'],
  [/^\/api\/admin/, 'administration'],
  [/^\/api\/enterprises/, 'onboarding'],
  [/^\/api\/stats|^\/dashboard/, 'statistics'],
  [/^\/api\/audit/, 'audit'],
  [/^\/federation\/|^\/api\/federation/, 'federation'],
  [/^\/bench\//, 'bench'],
];

function tagOf(method: string, url: string): string {
  if (url.startsWith('/api/handles') && method !== 'GET') return 'registration';
  if (url === '/api/handles') return 'registration';
  for (const [pattern, tag] of TAGS) if (pattern.test(url)) return tag;
  return 'operations';
}

const WHO: Record<Caller, string> = { anonymous: 'anyone (no key)', enterprise: 'enterprise keys', auditor: 'auditor keys', admin: 'admin keys' };

/** Adds what the document needs to a route's schema; returns the schema to use. */
function documentRoute(route: RouteOptions): JsonSchema | undefined {
  const method = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => (m === 'HEAD' ? 'GET' : m))[0]!;
  const docs = docsRouteSchema(route.url);
  const schema: JsonSchema = { ...(docs ?? (route.schema as JsonSchema | undefined) ?? {}) };
  const response: Responses | undefined = schema.response ? { ...(schema.response as Responses) } : undefined;
  if (response) {
    const handleStyle = route.url === '/api/handles' || route.url.startsWith('/api/handles/');
    for (const [status, given] of Object.entries(response)) {
      const shared = given as unknown;
      if ((shared === ErrorBody || shared === HandleErrorBody) && /^[45]/.test(status)) response[status] = errorSchema(shared === HandleErrorBody, status);
    }
    if (!Object.keys(response).some((s) => s.startsWith('4'))) response['4xx'] = errorSchema(handleStyle, '4xx');
    else if (!response['4xx']) response['4xx'] = errorSchema(handleStyle, '4xx');
    if (!response['5xx'] && !response['500'] && !response['503']) response['5xx'] = errorSchema(handleStyle, '5xx');
    for (const [status, example] of Object.entries(RESPONSE_EXAMPLES[`${method} ${route.url}`] ?? {})) {
      const given = response[status];
      if (given && !('content' in given)) response[status] = { ...given, examples: [example] };
    }
    for (const [status, given] of Object.entries(response)) response[status] = mediaExamples(given);
    schema.response = response;
  }
  const bodyExample = BODY_EXAMPLES[`${method} ${route.url}`];
  if (bodyExample !== undefined && schema.body) schema.body = { ...(schema.body as JsonSchema), examples: [bodyExample] };
  if (schema.body) schema.body = mediaExamples(schema.body as JsonSchema);
  const access = ACCESS_MATRIX[`${method} ${route.url}`];
  if (access) {
    schema.summary ??= access.what.charAt(0).toUpperCase() + access.what.slice(1);
    const who = access.who.map((c) => WHO[c]).join(', ');
    schema.description = `${schema.description ? `${String(schema.description)}\n\n` : ''}Who may call it: ${who}.`;
    schema.security = access.who.includes('anonymous') ? [{}, { apiKey: [] }] : [{ apiKey: [] }];
  }
  schema.tags ??= [tagOf(method, route.url)];
  return schema;
}

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  const catalog: CatalogRoute[] = [];
  app.decorate('routeCatalog', catalog);
  app.addHook('onRoute', (route) => {
    route.schema = documentRoute(route) as never;
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      catalog.push({ method, url: route.url, schema: route.schema as JsonSchema | undefined });
    }
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'snode',
        version,
        description:
          'A secondary node (二级节点) of the Industrial Internet identifier resolution system: register identifiers under ' +
          'your enterprise prefix, resolve anyone\'s (Handle REST compatible), statistics, audit and federation with the ' +
          'top-level node. Keys go in `Authorization: Bearer <key>`. Error bodies: Handle-style ' +
          '`{"responseCode":N,"handle":"...","message":"...","code":"..."}` under /api/handles, ' +
          '`{"error":{"code":"...","message":"...","requestId":"..."}}` elsewhere. A guide with curl examples: docs/api.md.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: snk_...' } } },
      tags: [
        { name: 'resolution', description: 'Resolve identifiers (anyone).' },
        { name: 'registration', description: 'Create, replace, delete, batch and import identifiers (enterprise and admin keys).' },
        { name: 'administration', description: 'Enterprises, prefixes, keys, applications (admin keys).' },
        { name: 'onboarding', description: 'Enterprises apply to join the node.' },
        { name: 'statistics', description: 'Registration and resolution statistics, the dashboard.' },
        { name: 'audit', description: 'The tamper-evident audit log.' },
        { name: 'federation', description: 'The link with the national top-level node.' },
        { name: 'operations', description: 'Health, readiness, metrics and this documentation.' },
      ],
    },
    transform: ({ schema, url }) => {
      const { url: shown, param } = openApiUrl(url);
      const s = schema as unknown as JsonSchema | undefined;
      if (!param || !s?.params) return { schema, url: shown };
      const params = s.params as { properties?: Record<string, JsonSchema>; required?: string[] };
      const { '*': wildcard, ...rest } = params.properties ?? {};
      const described = {
        ...(wildcard ?? { type: 'string' }),
        description: param === 'handle' ? 'The handle, PREFIX/SUFFIX (e.g. 88.118.8/PART-0001): its slash is part of the path; percent-encode the suffix.' : 'The file path.',
      };
      return { schema: { ...s, params: { ...params, properties: { ...rest, [param]: described }, required: [param] } } as never, url: shown };
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { deepLinking: true, validatorUrl: null } });
}
