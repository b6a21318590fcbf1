/**
 * GET /{handle}?qr=svg|png against a real node: the codes decode (jsQR) back to the node's public
 * resolution URL of the handle, in both formats, at several sizes and error correction levels;
 * bounds and refusals; caching headers; and the proxy view unchanged without `qr`.
 */
import jsQRModule from 'jsqr';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

// jsqr is CommonJS whose types declare a default export: Node hands over module.exports itself.
const jsQR = jsQRModule as unknown as typeof jsQRModule.default;

let db: TestDatabase;
let node: TestNode;
let key: string;

const P = '88.118.64';
const PUBLIC = 'https://id.example.cn/';
const UNUSUAL = `${P}/批次/2026 A#1`;
const UNUSUAL_PATH = `${P}/${encodeURIComponent('批次')}/${encodeURIComponent('2026 A#1')}`;

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: false, env: { PUBLIC_URL: PUBLIC } });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(6401), P));
  for (const handle of [`${P}/PART-0001`, UNUSUAL]) {
    const path = handle === UNUSUAL ? UNUSUAL_PATH : handle;
    const r = await call(node.url, 'PUT', `/api/handles/${path}`, { key, body: { values: [url('https://example.com/parts/0001')] } });
    expect(r.status, r.text).toBe(200);
  }
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

async function fetchBytes(path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${node.url}${path}`, { headers, redirect: 'manual' });
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

/** jsQR on RGBA pixels. */
function decode(rgba: Uint8ClampedArray, width: number, height: number): string | undefined {
  return jsQR(rgba, width, height)?.data;
}

function decodePng(bytes: Buffer): { text: string | undefined; width: number; height: number } {
  const png = PNG.sync.read(bytes);
  return { text: decode(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height), width: png.width, height: png.height };
}

/**
 * The SVG's modules back into a bitmap: its viewBox is the symbol with its quiet zone, in
 * modules; every dark module is inside one rectangle of the path (M x y h w v 1 h -w z).
 */
function decodeSvg(svg: string): { text: string | undefined; modules: number; width: string | undefined } {
  const modules = Number(/viewBox="0 0 (\d+) \1"/.exec(svg)?.[1]);
  const d = /<path[^>]* d="([^"]*)"/.exec(svg)?.[1] ?? '';
  const dark = new Uint8Array(modules * modules);
  for (const m of d.matchAll(/M(\d+) (\d+)h(\d+)v1h-\3z/g)) {
    const [x, y, w] = [Number(m[1]), Number(m[2]), Number(m[3])];
    for (let i = 0; i < w; i += 1) dark[y * modules + x + i] = 1;
  }
  expect(d.replace(/M(\d+) (\d+)h(\d+)v1h-\3z/g, '')).toBe(''); // nothing else drawn
  const scale = 6;
  const side = modules * scale;
  const rgba = new Uint8ClampedArray(side * side * 4).fill(255);
  for (let y = 0; y < side; y += 1) {
    for (let x = 0; x < side; x += 1) {
      if (!dark[Math.floor(y / scale) * modules + Math.floor(x / scale)]) continue;
      const at = (y * side + x) * 4;
      rgba[at] = rgba[at + 1] = rgba[at + 2] = 0;
    }
  }
  return { text: decode(rgba, side, side), modules, width: /<svg[^>]* width="(\d+)"/.exec(svg)?.[1] };
}

describe('QR codes of handles', () => {
  it('PNG codes decode to the public resolution URL at each size and error correction level, exactly as large as asked', async () => {
    for (const [size, ecc] of [[96, 'L'], [256, 'M'], [300, 'Q'], [1024, 'H']] as const) {
      const r = await fetchBytes(`/${P}/PART-0001?qr=png&size=${size}&ecc=${ecc}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('image/png');
      const png = decodePng(r.body);
      expect([png.width, png.height]).toEqual([size, size]);
      expect(png.text, `${size} ${ecc}`).toBe(`https://id.example.cn/${P}/PART-0001`);
    }
    // Defaults: 256 px, level M.
    expect(decodePng((await fetchBytes(`/${P}/PART-0001?qr=png`)).body)).toMatchObject({ width: 256, text: `https://id.example.cn/${P}/PART-0001` });
  });

  it('SVG codes decode to the same URL, with the size as their width, and more modules for stronger error correction', async () => {
    const modules: number[] = [];
    for (const ecc of ['L', 'M', 'Q', 'H']) {
      const r = await fetchBytes(`/${P}/PART-0001?qr=svg&size=512&ecc=${ecc.toLowerCase()}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('image/svg+xml');
      const svg = decodeSvg(r.body.toString());
      expect(svg.text, ecc).toBe(`https://id.example.cn/${P}/PART-0001`);
      expect(svg.width).toBe('512');
      modules.push(svg.modules);
    }
    expect([...modules].sort((a, b) => a - b)).toEqual(modules);
    expect(modules[3]).toBeGreaterThan(modules[0]!);
  });

  it('percent-encodes the suffix, so the decoded URL resolves the handle on the node', async () => {
    const svg = decodeSvg((await fetchBytes(`/${UNUSUAL_PATH}?qr=svg`)).body.toString());
    expect(svg.text).toBe(`https://id.example.cn/${UNUSUAL_PATH}`);
    const png = decodePng((await fetchBytes(`/${UNUSUAL_PATH}?qr=png&size=400&ecc=H`)).body);
    expect(png.text).toBe(svg.text);
    const resolved = await call(node.url, 'GET', `${svg.text!.slice(PUBLIC.length - 1)}?noredirect`);
    expect(resolved.status).toBe(200);
    expect(resolved.body.handle).toBe(UNUSUAL);
  });

  it('caches: a strong tag per code, 304 when the client has it, a day of max-age', async () => {
    const first = await fetchBytes(`/${P}/PART-0001?qr=png&size=200`);
    const tag = first.headers.get('etag')!;
    expect(tag).toMatch(/^"qr-[A-Za-z0-9_-]+"$/);
    expect(first.headers.get('cache-control')).toBe('public, max-age=86400');
    expect(first.headers.get('content-disposition')).toBe(`inline; filename="88.118.64_PART-0001.png"`);
    const again = await fetchBytes(`/${P}/PART-0001?qr=png&size=200`, { 'if-none-match': tag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    // Weak comparison (a compressing proxy sends W/"..."), lists and * also revalidate.
    for (const known of [`W/${tag}`, `"other", ${tag}`, '*']) {
      expect((await fetchBytes(`/${P}/PART-0001?qr=png&size=200`, { 'if-none-match': known })).status, known).toBe(304);
    }
    expect((await fetchBytes(`/${P}/PART-0001?qr=png&size=200`, { 'if-none-match': '"qr-other"' })).status).toBe(200);
    for (const other of ['qr=png&size=201', 'qr=svg&size=200', 'qr=png&size=200&ecc=H']) {
      expect((await fetchBytes(`/${P}/PART-0001?${other}`)).headers.get('etag')).not.toBe(tag);
    }
  });

  it('refuses bad options with a clear 400', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['qr=gif', 'INVALID_QR_FORMAT', /svg or png/],
      ['qr=png&size=10', 'INVALID_QR_SIZE', /32 to 2048/],
      ['qr=png&size=4096', 'INVALID_QR_SIZE', /32 to 2048/],
      ['qr=png&size=1e3', 'INVALID_QR_SIZE', /whole number/],
      ['qr=svg&size=200&size=300', 'INVALID_QR_SIZE', /whole number/],
      ['qr=png&ecc=X', 'INVALID_QR_ECC', /L \(7%\), M \(15%\), Q \(25%\) or H \(30%\)/],
      ['qr=png&size=40&ecc=H', 'QR_SIZE_TOO_SMALL', /size must be at least \d+ at error correction level H/],
    ];
    for (const [query, code, message] of cases) {
      const r = await call(node.url, 'GET', `/${P}/PART-0001?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.error.code, query).toBe(code);
      expect(r.body.error.message, query).toMatch(message);
    }
  });

  it('does not count a code fetched as a resolution; resolving the handle still counts', async () => {
    const resolutions = async () => {
      await node.node.app.statsWorker.tick();
      return (await call(node.url, 'GET', '/api/stats/overview', { key: node.adminKey })).body.resolutions.today.total as number;
    };
    const before = await resolutions();
    for (let i = 0; i < 5; i += 1) expect((await fetchBytes(`/${P}/PART-0001?qr=svg&size=${100 + i}`)).status).toBe(200);
    expect((await fetchBytes(`/${P}/NO-SUCH-QR?qr=svg`)).status).toBe(404);
    expect(await resolutions()).toBe(before);
    expect((await call(node.url, 'GET', `/api/handles/${P}/PART-0001`)).status).toBe(200);
    expect(await resolutions()).toBe(before + 1);
  });

  it('prints no code for a handle the node does not hold', async () => {
    const unknown = await call(node.url, 'GET', `/${P}/NO-SUCH?qr=png`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('HANDLE_NOT_FOUND');
    // Another node's prefix: not looked up anywhere.
    expect((await call(node.url, 'GET', '/99.1/X?qr=svg')).body.error.code).toBe('HANDLE_NOT_FOUND');
    await call(node.url, 'PUT', `/api/handles/${P}/GONE`, { key, body: { values: [url('https://example.com/gone')] } });
    expect((await fetchBytes(`/${P}/GONE?qr=svg`)).status).toBe(200);
    await call(node.url, 'DELETE', `/api/handles/${P}/GONE`, { key });
    expect((await fetchBytes(`/${P}/GONE?qr=svg`)).status).toBe(404);
  });

  it('leaves the proxy view as it was without qr: size and ecc pass on to the redirect', async () => {
    const r = await fetchBytes(`/${P}/PART-0001?size=abc&ecc=zz&size=2`);
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe('https://example.com/parts/0001?size=abc&ecc=zz&size=2');
  });
});

describe('QR codes without PUBLIC_URL', () => {
  it('encode the address the node listens at', async () => {
    const plain = await startTestNode({ databaseUrl: db.url, redis: false });
    try {
      const r = await fetchBytesFrom(plain.url, `/${P}/PART-0001?qr=png&size=300`);
      expect(decodePng(r).text).toBe(`${plain.url}/${P}/PART-0001`);
    } finally {
      await plain.close();
    }
  });
});

async function fetchBytesFrom(base: string, path: string): Promise<Buffer> {
  const response = await fetch(`${base}${path}`);
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}
