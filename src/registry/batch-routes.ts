/** POST /api/handles/batch: many writes in one request, each item answered in order. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { ErrorDetails, HandleErrorBody, handleErrorResponses } from '../infra/http-schemas.js';
import { BATCH_MAX_OPERATIONS, type BatchOperation, type BatchRegistry } from './batch.js';
import { itemChecker } from './batch-items.js';
import { IDEMPOTENCY_KEY_PATTERN } from './idempotency.js';

const ItemResultSchema = Type.Object({
  responseCode: Type.Integer(),
  handle: Type.String(),
  op: Type.String(),
  status: Type.Integer(),
  version: Type.Optional(Type.Integer()),
  code: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
  details: Type.Optional(ErrorDetails),
});

const BatchAnswerSchema = Type.Object({
  responseCode: Type.Integer(),
  mode: Type.String(),
  applied: Type.Boolean(),
  counts: Type.Object({ created: Type.Integer(), updated: Type.Integer(), deleted: Type.Integer(), failed: Type.Integer() }),
  results: Type.Array(ItemResultSchema),
});

export function batchRoutes(batches: BatchRegistry, maxValues: number, bodyLimit: number): FastifyPluginAsyncTypebox {
  const itemError = itemChecker(maxValues);

  return async (app) => {
    app.post('/api/handles/batch', {
      bodyLimit,
      schema: {
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN, description: 'Retries with the same key and body answer the first answer and apply nothing again.' })) }),
        body: Type.Object(
          {
            mode: Type.Optional(Type.Union([Type.Literal('atomic'), Type.Literal('partial')], { default: 'partial', description: 'atomic: all or nothing; partial: valid items are written.' })),
            operations: Type.Array(Type.Unknown({ description: 'An operation: {op: create|upsert|update|delete, handle, values?, version?}, checked item by item.' }), {
              minItems: 1,
              maxItems: BATCH_MAX_OPERATIONS,
            }),
          },
          { additionalProperties: false },
        ),
        // A failed atomic batch answers its first failing item's status with the batch answer.
        response: {
          ...handleErrorResponses,
          200: BatchAnswerSchema,
          ...Object.fromEntries([400, 403, 404, 409, 412].map((status) => [status, Type.Union([BatchAnswerSchema, HandleErrorBody])])),
        },
      },
    }, async (request, reply) => {
      const operations = request.body.operations as BatchOperation[];
      const mode = request.body.mode ?? 'partial';
      const result = await batches.run(request.actor, mode, operations, itemError(operations), request.headers['idempotency-key'], { id: request.id, ip: request.ip });
      if (result.replayed) reply.header('idempotency-replayed', 'true');
      reply.code(result.status);
      return result.body;
    });
  };
}
