/** Request authentication: every request carries an actor, anonymous unless it sends a key. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditContext } from '../audit/entry.js';
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
  // A callback hook, not an async one: an anonymous request costs no promise here. A keyed one
  // costs an HMAC and a map lookup when its key is cached (key-cache.ts), a query when not.
  app.addHook('onRequest', (request, _reply, done) => {
    const header = request.headers.authorization;
    if (header === undefined) {
      request.actor = ANONYMOUS;
      done();
      return;
    }
    tenancy.authenticate(header).then(
      (actor) => {
        request.actor = actor;
        done();
      },
      (err: Error) => done(err),
    );
  });
}

/** Who made a request, for the audit log (client IP as TRUST_PROXY lets the node see it). */
export function auditContext(request: FastifyRequest): AuditContext {
  const { actor } = request;
  return actor.kind === 'key'
    ? { keyId: actor.keyId, role: actor.role, requestId: request.id, clientIp: request.ip }
    : { keyId: null, role: 'anonymous', requestId: request.id, clientIp: request.ip };
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
