/**
 * /api/keys: an enterprise manages its own API keys (list, create, revoke) with one of its keys,
 * never another enterprise's and never with more rights than the key it uses (service.ts).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { errorResponses, UUID_PATTERN } from '../infra/http-schemas.js';
import { auditContext } from './auth.js';
import { ApiKey, NewApiKey, RoleSchema } from './routes.js';
import type { KeyActor, TenancyService } from './service.js';

export function ownKeyRoutes(tenancy: TenancyService): FastifyPluginAsyncTypebox {
  return async (app) => {
    // Enterprise keys only (access.ts), so the actor is a key.
    const actor = (request: { actor: unknown }) => request.actor as KeyActor;

    app.get('/', { prefixTrailingSlash: 'no-slash', schema: { response: { 200: Type.Object({ items: Type.Array(ApiKey) }), ...errorResponses } } },
      async (request) => ({ items: await tenancy.listOwnKeys(actor(request)) }));

    app.post('/', {
      prefixTrailingSlash: 'no-slash',
      schema: {
        body: Type.Object(
          {
            role: Type.Optional(RoleSchema),
            label: Type.Optional(Type.String({ maxLength: 200 })),
            expiresAt: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 date-time; no later than the calling key\'s own expiry.' })),
            prefixes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
              minItems: 1, maxItems: 1000, description: "Restrict the key to these of the enterprise's prefixes (within the calling key's own restriction).",
            })),
          },
          { additionalProperties: false },
        ),
        response: { 201: NewApiKey, ...errorResponses },
      },
    }, async (request, reply) => reply.code(201).send(await tenancy.createOwnKey(actor(request), request.body, auditContext(request))));

    app.delete('/:id', { schema: { params: Type.Object({ id: Type.String({ pattern: UUID_PATTERN }) }), response: { 200: ApiKey, ...errorResponses } } },
      async (request) => tenancy.revokeOwnKey(actor(request), request.params.id, auditContext(request)));
  };
}
