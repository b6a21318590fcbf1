/** Public onboarding: POST /api/enterprises/apply and the applicant's view of its application. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { errorResponses, UUID_PATTERN } from '../infra/http-schemas.js';
import { auditContext } from './auth.js';
import type { OnboardingService } from './onboarding.js';

export const Application = Type.Object({
  id: Type.String(),
  name: Type.String(),
  uscc: Type.String(),
  contact: Type.Object({ name: Type.String(), email: Type.String(), phone: Type.String() }),
  industryCode: Type.String(),
  requestedPrefix: Type.Union([Type.String(), Type.Null()]),
  state: Type.Enum(['pending', 'approved', 'rejected']),
  reason: Type.Union([Type.String(), Type.Null()]),
  enterpriseId: Type.Union([Type.String(), Type.Null()]),
  prefix: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  decidedAt: Type.Union([Type.String(), Type.Null()]),
});

/** What an applicant sees of its application: the decision, not the contact data. */
const ApplicationStatus = Type.Object({
  id: Type.String(),
  state: Type.Enum(['pending', 'approved', 'rejected']),
  reason: Type.Union([Type.String(), Type.Null()]),
  prefix: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  decidedAt: Type.Union([Type.String(), Type.Null()]),
});

export const ApplyBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200, description: 'Company name.' }),
  uscc: Type.String({ minLength: 18, maxLength: 18, description: 'Unified social credit code (GB 32100-2015).' }),
  contact: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 100 }),
    email: Type.String({ minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' }),
    phone: Type.Optional(Type.String({ maxLength: 32, pattern: '^[0-9+() -]*$' })),
  }, { additionalProperties: false }),
  industryCode: Type.String({ pattern: '^[A-T]([0-9]{2}([0-9]{1,2})?)?$', description: 'GB/T 4754 industry code, e.g. C3562.' }),
  requestedPrefix: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'A prefix one segment below NODE_PREFIX; omitted: the next free one.' })),
}, { additionalProperties: false });

export function onboardingRoutes(onboarding: OnboardingService): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post('/apply', {
      schema: { body: ApplyBody, response: { 201: ApplicationStatus, ...errorResponses } },
    }, async (request, reply) => reply.code(201).send(await onboarding.apply(request.body, auditContext(request))));

    app.get('/applications/:id', {
      schema: { params: Type.Object({ id: Type.String({ pattern: UUID_PATTERN }) }), response: { 200: ApplicationStatus, ...errorResponses } },
    }, async (request) => onboarding.get(request.params.id));
  };
}
