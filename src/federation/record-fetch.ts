/** Fetches a record over another node's public resolution API (the JSON of GET /api/handles/{handle}). */
import type { Handle } from '../handle/handle.js';
import Value from 'typebox/value';
import type { HandleRecord, HandleValue } from '../handle/values.js';
import { HandleValueSchema } from '../infra/http-schemas.js';
import { HEADER_HOPS, HEADER_TAKEOVER } from './context.js';
import type { HttpPools } from './http-pools.js';

export interface Fetched {
  record: HandleRecord | undefined;
  /** The node a top-level node stood in for, when the answer came from its escrow copy. */
  takeover?: string;
}

export class FetchFailed extends Error {
  override readonly name = 'FetchFailed';
}

export async function fetchRecord(pools: HttpPools, baseUrl: string, handle: Handle, hops: number): Promise<Fetched> {
  const path = `/api/handles/${handle.prefix}/${encodeURIComponent(handle.suffix)}`;
  let answer;
  try {
    answer = await pools.request(baseUrl, 'GET', path, { accept: 'application/json', [HEADER_HOPS]: String(hops) });
  } catch (err) {
    throw new FetchFailed(`${baseUrl}: ${(err as Error).message}`);
  }
  const takeoverHeader = answer.headers[HEADER_TAKEOVER];
  const takeover = typeof takeoverHeader === 'string' ? takeoverHeader : undefined;
  if (answer.status === 404) return { record: undefined, takeover };
  if (answer.status !== 200) throw new FetchFailed(`${baseUrl}${path} answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 200)}`);
  let body: { handle?: string; values?: unknown };
  try {
    body = JSON.parse(answer.body.toString('utf8')) as typeof body;
  } catch {
    throw new FetchFailed(`${baseUrl}${path} answered 200 with a body that is not JSON`);
  }
  if (typeof body !== 'object' || body === null || !Array.isArray(body.values)) throw new FetchFailed(`${baseUrl}${path} answered without values`);
  // Another node's values are shown, redirected to and rendered in pages like this node's own:
  // one of the wrong shape would fail every answer for the handle. The answer is refused instead.
  const bad = body.values.findIndex((v) => !Value.Check(HandleValueSchema, v));
  if (bad >= 0) throw new FetchFailed(`${baseUrl}${path} answered a value that is not a Handle value (values[${bad}]: ${JSON.stringify(body.values[bad]).slice(0, 200)})`);
  const etag = answer.headers.etag;
  const version = typeof etag === 'string' ? Number(/"(\d+)/.exec(etag)?.[1] ?? 1) : 1;
  return { record: { handle: handle.handle, version, values: body.values as HandleValue[] }, takeover };
}
