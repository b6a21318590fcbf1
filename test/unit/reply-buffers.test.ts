import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplyBuffers } from '../../src/infra/reply-buffers.js';

/** A real HTTP server whose handler lends a body buffer of the size the path asks for. */
async function serve(lender: ReplyBuffers, hold: (res: http.ServerResponse) => boolean = () => false) {
  const lent: ArrayBufferLike[] = [];
  const held: Array<{ res: http.ServerResponse; body: Buffer }> = [];
  const server = http.createServer((req, res) => {
    const size = Number(req.url!.slice(1));
    const body = lender.lend(res, size);
    expect(body.length).toBe(size);
    body.fill(0x61);
    lent.push(body.buffer);
    res.setHeader('content-length', size);
    if (hold(res)) held.push({ res, body });
    else res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.push(server);
  return { base, lent, held };
}

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** Waits until the lender holds `bytes` idle: 'finish' comes after the client may have the answer. */
async function heldBecomes(lender: ReplyBuffers, bytes: number): Promise<void> {
  for (let i = 0; i < 200 && lender.held !== bytes; i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(lender.held).toBe(bytes);
}

describe('ReplyBuffers', () => {
  it('lends the same memory again once a response has finished, never to two unfinished responses', async () => {
    const lender = new ReplyBuffers();
    const { base, lent, held } = await serve(lender, (res) => res.req.url !== '/17000');
    const both = [fetch(`${base}/20000`), fetch(`${base}/30000`)];
    while (held.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(lent[0]).not.toBe(lent[1]);
    for (const { res, body } of held) res.end(body);
    for (const r of await Promise.all(both)) expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(0);
    await heldBecomes(lender, 2 * 32768);
    const again = await fetch(`${base}/17000`);
    expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.alloc(17000, 0x61))).toBe(true);
    expect([lent[0], lent[1]]).toContain(lent[2]);
    await heldBecomes(lender, 2 * 32768);
  });

  it('keeps a buffer whose response never finished', async () => {
    const lender = new ReplyBuffers();
    const { base, held } = await serve(lender, () => true);
    const controller = new AbortController();
    const pending = fetch(`${base}/40000`, { signal: controller.signal }).catch(() => undefined);
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const closed = new Promise((resolve) => held[0]!.res.once('close', resolve));
    controller.abort();
    await pending;
    await closed;
    expect(lender.held).toBe(0);
  });

  it('lends small and huge sizes buffers of their own, and keeps at most its idle budget', async () => {
    const lender = new ReplyBuffers(65536);
    const { base, held } = await serve(lender, (res) => res.req.url === '/40000');
    await (await fetch(`${base}/100`)).arrayBuffer();
    await (await fetch(`${base}/${9 * 1024 * 1024}`)).arrayBuffer();
    await heldBecomes(lender, 0);
    // Two 64 KiB buffers out at once; the budget keeps one of them when both come back.
    const answers = [fetch(`${base}/40000`), fetch(`${base}/40000`)];
    while (held.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(held[0]!.body.buffer).not.toBe(held[1]!.body.buffer);
    for (const { res, body } of held) res.end(body);
    for (const r of await Promise.all(answers)) expect((await r.arrayBuffer()).byteLength).toBe(40000);
    await heldBecomes(lender, 65536);
  });
});
