/** PUT and GET /api/templates/{prefix}/{version}, and GET /api/templates/{prefix} (every version). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { ErrorBody, errorResponses } from '../infra/http-schemas.js';
import { auditContext } from '../tenancy/auth.js';
import { FIRST_ITEM_INDEX, VERSION_PATTERN, type TemplateItem } from './templates-check.js';
import type { TemplateService } from './templates.js';

const ITEM_EXAMPLE = { name: 'serialNumber', type: 'SERIAL_NO', index: 2001, required: true, minLength: 6, maxLength: 32, enabled: true, description: '出厂序列号' };
const TEMPLATE_EXAMPLE = {
  prefix: '88.118.8',
  version: '1.0',
  description: '零件 (parts)',
  items: [ITEM_EXAMPLE, { name: 'material', type: 'MATERIAL', index: 2002, required: false, maxLength: 64, enabled: false }],
  revision: 2,
  inUse: true,
  createdAt: '2026-11-29T08:00:00.000Z',
  updatedAt: '2026-11-29T08:05:00.000Z',
};

const bound = (what: string) => Type.Optional(Type.Integer({ minimum: 0, maximum: 1_048_576, description: `${what} length of the data: characters of a string value, bytes of a base64 one.` }));

const ItemInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, description: 'Unique within the template.' }),
    type: Type.String({ minLength: 1, maxLength: 255, description: 'The value type a record holds at this index (compared case-insensitively).' }),
    index: Type.Integer({ minimum: FIRST_ITEM_INDEX, maximum: 2147483647, description: `The value index, ${FIRST_ITEM_INDEX} or more; unique within the template.` }),
    required: Type.Optional(Type.Boolean({ default: false, description: 'A record following the template must hold it (unless disabled).' })),
    minLength: bound('Least'),
    maxLength: bound('Greatest'),
    enabled: Type.Optional(Type.Boolean({ default: true, description: 'false: kept, but records following the template may not hold it. Items are disabled, never deleted.' })),
    description: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false, examples: [ITEM_EXAMPLE] },
);

const ItemOutput = Type.Object({
  name: Type.String(),
  type: Type.String(),
  index: Type.Integer(),
  required: Type.Boolean(),
  minLength: Type.Optional(Type.Integer()),
  maxLength: Type.Optional(Type.Integer()),
  enabled: Type.Boolean(),
  description: Type.Optional(Type.String()),
});

const TemplateSchema = Type.Object(
  {
    prefix: Type.String(),
    version: Type.String(),
    description: Type.String(),
    items: Type.Array(ItemOutput),
    revision: Type.Integer({ description: 'Counts the changes of this version.' }),
    inUse: Type.Boolean({ description: 'A record names this version: it can no longer change.' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { examples: [TEMPLATE_EXAMPLE] },
);

const PrefixParams = Type.Object({ prefix: Type.String({ minLength: 1, maxLength: 128, examples: ['88.118.8'] }) });
const VersionParams = Type.Object({
  prefix: Type.String({ minLength: 1, maxLength: 128, examples: ['88.118.8'] }),
  version: Type.String({ pattern: VERSION_PATTERN, examples: ['1.0'], description: 'What a record holds at index 1001 to follow this version.' }),
});

const errors = {
  ...errorResponses,
  429: ErrorBody,
  503: ErrorBody,
};

export function templateRoutes(templates: TemplateService): FastifyPluginAsyncTypebox {
  // Before the body is read: who may write comes before what is written.
  const mayWrite = async (request: FastifyRequest) => {
    templates.authorise(request.actor, (request.params as { prefix: string }).prefix);
  };

  return async (app) => {
    app.put('/api/templates/:prefix/:version', {
      onRequest: mayWrite,
      schema: {
        description: 'Define a template version, or change one no record names yet. Items left out of a stored version are refused: send them with "enabled": false.',
        params: VersionParams,
        body: Type.Object(
          {
            description: Type.Optional(Type.String({ maxLength: 1024 })),
            items: Type.Array(ItemInput, { minItems: 1, maxItems: 1000 }),
          },
          { additionalProperties: false, examples: [{ description: TEMPLATE_EXAMPLE.description, items: TEMPLATE_EXAMPLE.items }] },
        ),
        response: { 200: TemplateSchema, 201: TemplateSchema, ...errors },
      },
    }, async (request, reply) => {
      const result = await templates.put(request.actor, request.params.prefix, request.params.version, {
        ...(request.body.description !== undefined ? { description: request.body.description } : {}),
        items: request.body.items as TemplateItem[],
      }, auditContext(request));
      reply.code(result.created ? 201 : 200);
      return result.template;
    });

    app.get('/api/templates/:prefix/:version', {
      schema: {
        description: 'One template version (anyone may read templates: they describe public data models).',
        params: VersionParams,
        response: { 200: TemplateSchema, ...errors },
      },
    }, async (request) => templates.get(request.params.prefix, request.params.version));

    app.get('/api/templates/:prefix', {
      schema: {
        description: "The versions of a prefix's templates, oldest first, a page at a time.",
        params: PrefixParams,
        querystring: Type.Object({
          page: Type.Integer({ minimum: 1, maximum: 1000, default: 1 }),
          pageSize: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
        }, { additionalProperties: false }),
        response: {
          200: Type.Object(
            { prefix: Type.String(), total: Type.Integer({ description: 'Versions the prefix has.' }), page: Type.Integer(), pageSize: Type.Integer(), templates: Type.Array(TemplateSchema) },
            { examples: [{ prefix: '88.118.8', total: 1, page: 1, pageSize: 20, templates: [TEMPLATE_EXAMPLE] }] },
          ),
          ...errors,
        },
      },
    }, async (request) => templates.list(request.params.prefix, request.query.page, request.query.pageSize));
  };
}
