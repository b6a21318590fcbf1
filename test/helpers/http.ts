/** A small fetch wrapper for talking to a node over real HTTP. */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export interface CallOptions {
  key?: string;
  body?: unknown;
  /** Sent as is (with contentType), instead of JSON-encoding `body`. */
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  let body: string | Buffer | undefined;
  if (options.raw !== undefined) {
    body = options.raw;
    if (options.contentType) headers['content-type'] = options.contentType;
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = options.contentType ?? 'application/json';
  }
  const response = await fetch(`${base}${path}`, { method, headers, body, redirect: 'manual' });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** Sets up an enterprise with one prefix and an enterprise key through the admin API. */
export async function onboard(base: string, adminKey: string, uscc: string, prefix: string, name = 'Test Enterprise'): Promise<{ enterpriseId: string; key: string }> {
  const e = await call(base, 'POST', '/api/admin/enterprises', { key: adminKey, body: { name, uscc } });
  if (e.status !== 201) throw new Error(`enterprise: ${e.status} ${e.text}`);
  const p = await call(base, 'POST', `/api/admin/enterprises/${e.body.id}/prefixes`, { key: adminKey, body: { prefix } });
  if (p.status !== 201) throw new Error(`prefix: ${p.status} ${p.text}`);
  const k = await call(base, 'POST', '/api/admin/keys', { key: adminKey, body: { role: 'enterprise', enterpriseId: e.body.id } });
  if (k.status !== 201) throw new Error(`key: ${k.status} ${k.text}`);
  return { enterpriseId: e.body.id, key: k.body.key };
}

export const url = (value: string, index = 1) => ({ index, type: 'URL', data: { format: 'string', value } });
