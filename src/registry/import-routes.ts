/** POST /api/imports (a streamed NDJSON or CSV file), GET /api/imports/{id} and its rejected lines. */
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { csvCell } from '../infra/csv-cell.js';
import { AppError } from '../infra/errors.js';
import { errorResponses } from '../infra/http-schemas.js';
import type { ImportJob } from './import-jobs.js';
import type { ImportFormat } from './import-lines.js';
import type { Importer } from './importer.js';

const NDJSON_TYPE = 'application/x-ndjson';
const CSV_TYPE = 'text/csv';
const PAGE = 5000;

const JobSchema = Type.Object({
  id: Type.String(),
  prefix: Type.String(),
  format: Type.String(),
  mode: Type.String(),
  state: Type.String({ description: 'receiving, queued, running, done or failed.' }),
  bytes: Type.Integer(),
  linesRead: Type.Integer({ description: 'Lines whose outcome is committed (written or rejected).' }),
  written: Type.Integer(),
  rejected: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  finishedAt: Type.Union([Type.String(), Type.Null()]),
  links: Type.Object({ self: Type.String(), rejected: Type.String() }),
});

function view(job: ImportJob) {
  const { apiKeyId: _k, actor: _a, filePath: _f, source: _s, ...shown } = job;
  return { ...shown, links: { self: `/api/imports/${job.id}`, rejected: `/api/imports/${job.id}/rejected` } };
}


export function importRoutes(importer: Importer, maxBytes: number): FastifyPluginAsyncTypebox {
  return async (app) => {
    // The file is not parsed here: the handler streams it to the spool.
    app.addContentTypeParser([NDJSON_TYPE, CSV_TYPE], (_request, payload, done) => done(null, payload));

    app.post('/api/imports', {
      schema: {
        querystring: Type.Object({
          prefix: Type.String({ minLength: 1, maxLength: 128, description: 'Every line is imported under this prefix.' }),
          mode: Type.Optional(Type.Enum(['create', 'upsert'], { default: 'upsert', description: 'create: a line whose handle exists is rejected; upsert: it is replaced.' })),
          format: Type.Optional(Type.Enum(['ndjson', 'csv'], { description: 'Default: from Content-Type (application/x-ndjson or text/csv).' })),
        }),
        // No type: the file arrives as a stream, spooled and checked line by line.
        body: {
          content: {
            [NDJSON_TYPE]: { schema: { description: 'One {"suffix":"X","values":[...]} (or "handle") a line.', examples: ['{"suffix":"PART-0001","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://example.com/p/1"}}]}\n'] } },
            [CSV_TYPE]: { schema: { description: 'A header (a value type per column, optionally index:type), then one identifier a row.', examples: ['suffix,URL,EMAIL,2001:product.name\r\nPART-0001,https://example.com/p/1,qa@example.com,轴承 6205-2RS\r\n'] } },
          },
        },
        response: { 202: JobSchema, ...errorResponses },
      },
    }, async (request, reply) => {
      const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const format: ImportFormat = request.query.format ?? (contentType === CSV_TYPE ? 'csv' : 'ndjson');
      const body = request.body as unknown;
      if (!(body instanceof Readable)) throw new AppError('UNSUPPORTED_MEDIA_TYPE', `send the file as ${NDJSON_TYPE} or ${CSV_TYPE}`, 415);
      const job = await importer.upload(request.actor, request.query.prefix, format, request.query.mode ?? 'upsert', body, maxBytes);
      reply.code(202).header('location', `/api/imports/${job.id}`);
      return view(job);
    });

    app.get('/api/imports/:id', {
      schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: JobSchema, ...errorResponses } },
    }, async (request) => view(await importer.get(request.actor, request.params.id)));

    app.get('/api/imports/:id/rejected', {
      schema: {
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: {
          200: {
            description: 'The rejected lines as CSV (UTF-8 with BOM): line number, code, reason, the line as read.',
            content: { 'text/csv': { schema: Type.String({ examples: ['line,code,reason,text\r\n7,INVALID_VALUE,"value 1: format must be one of string, base64, hex, admin, vlist, site, key","{""suffix"":""P-7"",""values"":[]}"\r\n'] }) } },
          },
          ...errorResponses,
        },
      },
    }, async (request, reply) => {
      const job = await importer.get(request.actor, request.params.id);
      async function* rows(): AsyncGenerator<string> {
        yield '\uFEFFline,code,reason,text\r\n';
        for (let after = 0; ; ) {
          const page = await importer.rejections(job.id, after, PAGE);
          if (page.length === 0) return;
          yield page.map((r) => `${r.lineNo},${csvCell(r.code)},${csvCell(r.reason)},${csvCell(r.line)}\r\n`).join('');
          after = page[page.length - 1]!.lineNo;
        }
      }
      reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="import-${job.id}-rejected.csv"`);
      return reply.send(Readable.from(rows()) as never);
    });
  };
}
