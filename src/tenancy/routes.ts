/** /api/admin: enterprises, prefixes and API keys. Admin keys only. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { errorResponses, UUID_PATTERN } from '../infra/http-schemas.js';
import { ROLES } from './api-keys.js';
import { auditContext } from './auth.js';
import type { OnboardingService } from './onboarding.js';
import { Application } from './onboarding-routes.js';
import type { TenancyService } from './service.js';

const Enterprise = Type.Object({
  id: Type.String(),
  name: Type.String(),
  uscc: Type.String(),
  createdAt: Type.String(),
  prefixes: Type.Array(Type.String()),
});
const Prefix = Type.Object({ prefix: Type.String(), enterpriseId: Type.String(), state: Type.String(), createdAt: Type.String() });
export const RoleSchema = Type.Enum(ROLES);
export const ApiKey = Type.Object({
  id: Type.String(),
  hint: Type.String({ description: 'First characters of the key, to tell keys apart.' }),
  role: RoleSchema,
  enterpriseId: Type.Union([Type.String(), Type.Null()]),
  label: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
  lastUsedAt: Type.Union([Type.String(), Type.Null()]),
  prefixes: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'null: every prefix of the enterprise.' }),
});
export const NewApiKey = Type.Intersect([ApiKey, Type.Object({ key: Type.String({ description: 'The key itself. Shown once; store it now.' }) })]);
const IdParams = Type.Object({ id: Type.String({ pattern: UUID_PATTERN }) });
const Paging = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 10000, default: 1000 }),
  offset: Type.Integer({ minimum: 0, maximum: 1_000_000_000, default: 0 }),
});

export function adminRoutes(tenancy: TenancyService, onboarding: OnboardingService): FastifyPluginAsyncTypebox {
  return async (app) => {
    // Admin keys only (access.ts checks it onRequest: before the body is read, so callers without
    // an admin key learn nothing of the schemas).

    app.post('/enterprises', {
      schema: {
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200 }),
            uscc: Type.String({ minLength: 18, maxLength: 18, description: 'Unified social credit code (GB 32100-2015).' }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Enterprise, ...errorResponses },
      },
    }, async (request, reply) => reply.code(201).send(await tenancy.createEnterprise(request.body, auditContext(request))));

    app.get('/enterprises', { schema: { querystring: Paging, response: { 200: Type.Object({ items: Type.Array(Enterprise) }), ...errorResponses } } },
      async (request) => ({ items: await tenancy.listEnterprises(request.query.limit, request.query.offset) }));

    app.get('/enterprises/:id', { schema: { params: IdParams, response: { 200: Enterprise, ...errorResponses } } },
      async (request) => tenancy.getEnterprise(request.params.id));

    app.post('/enterprises/:id/prefixes', {
      schema: {
        params: IdParams,
        body: Type.Object({ prefix: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
        response: { 201: Prefix, ...errorResponses },
      },
    }, async (request, reply) => reply.code(201).send(await tenancy.addPrefix(request.params.id, request.body.prefix, auditContext(request))));

    app.get('/prefixes', { schema: { querystring: Paging, response: { 200: Type.Object({ items: Type.Array(Prefix) }), ...errorResponses } } },
      async (request) => ({ items: await tenancy.listPrefixes(request.query.limit, request.query.offset) }));

    app.post('/keys', {
      schema: {
        body: Type.Object(
          {
            role: RoleSchema,
            enterpriseId: Type.Optional(Type.String({ pattern: UUID_PATTERN })),
            label: Type.Optional(Type.String({ maxLength: 200 })),
            expiresAt: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 date-time after which the key is refused.' })),
            prefixes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
              minItems: 1, maxItems: 1000, description: 'Enterprise keys only: restrict the key to these of its prefixes.',
            })),
          },
          { additionalProperties: false },
        ),
        response: { 201: NewApiKey, ...errorResponses },
      },
    }, async (request, reply) => reply.code(201).send(await tenancy.createKey(request.body, auditContext(request))));

    app.get('/keys', {
      schema: {
        querystring: Type.Object({ enterpriseId: Type.Optional(Type.String({ pattern: UUID_PATTERN })) }),
        response: { 200: Type.Object({ items: Type.Array(ApiKey) }), ...errorResponses },
      },
    }, async (request) => ({ items: await tenancy.listKeys(request.query.enterpriseId) }));

    app.delete('/keys/:id', { schema: { params: IdParams, response: { 200: ApiKey, ...errorResponses } } },
      async (request) => tenancy.revokeKey(request.params.id, auditContext(request)));

    app.patch('/prefixes/:prefix', {
      schema: {
        params: Type.Object({ prefix: Type.String({ minLength: 1, maxLength: 128 }) }),
        body: Type.Object({ state: Type.Enum(['active', 'disabled']) }, { additionalProperties: false }),
        response: { 200: Prefix, ...errorResponses },
      },
    }, async (request) => tenancy.setPrefixState(request.params.prefix, request.body.state, auditContext(request)));

    app.get('/applications', {
      schema: {
        querystring: Type.Object({ state: Type.Optional(Type.Enum(['pending', 'approved', 'rejected'])), ...Paging.properties }),
        response: { 200: Type.Object({ items: Type.Array(Application) }), ...errorResponses },
      },
    }, async (request) => ({ items: await onboarding.list(request.query.state, request.query.limit, request.query.offset) }));

    app.post('/applications/:id/approve', {
      schema: {
        params: IdParams,
        response: { 200: Type.Object({ application: Application, enterprise: Enterprise, prefix: Prefix, key: NewApiKey }), ...errorResponses },
      },
    }, async (request) => onboarding.approve(request.params.id, auditContext(request)));

    app.post('/applications/:id/reject', {
      schema: {
        params: IdParams,
        body: Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false }),
        response: { 200: Application, ...errorResponses },
      },
    }, async (request) => onboarding.reject(request.params.id, request.body.reason, auditContext(request)));
  };
}
