/** Request authentication: every request carries an actor, anonymous unless it sends a key. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors } from '../infra/errors.js';
import { ANONYMOUS, type Actor } from './actor.js';
import type { Role } from './api-keys.js';
import type { TenancyService } from './service.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor;
  }
}

export function registerAuthentication(app: FastifyInstance, tenancy: TenancyService): void {
  // null, not an object: fastify shares a decorator's initial value between requests.
  app.decorateRequest('actor', null as never);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    // No header, no I/O: anonymous resolution never waits on the database for auth.
    request.actor = header === undefined ? ANONYMOUS : await tenancy.authenticate(header);
  });
}

/** onRequest hook for routes limited to some roles: 401 without a key, 403 with a key of another role. */
export function requireRole(...roles: Role[]) {
  return async (request: FastifyRequest): Promise<void> => {
    const { actor } = request;
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    if (!roles.includes(actor.role)) {
      throw errors.forbidden('ROLE_NOT_ALLOWED', `this route needs a key with role ${roles.join(' or ')}; this key is ${actor.role}`);
    }
  };
}
