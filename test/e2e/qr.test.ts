/**
 * QR codes as a person would use them: the SVG the node serves, drawn by a real browser (Debian's
 * chromium through playwright-core) at several sizes and error correction levels and read back
 * with jsQR from the screenshot; and `snode qr` on the command line (PNG to a file, SVG to
 * standard output, refusals and exit codes).
 */
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import jsQRModule from 'jsqr';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { runCli } from '../helpers/process.js';
import { makeUscc } from '../helpers/uscc.js';

// jsqr is CommonJS whose types declare a default export: Node hands over module.exports itself.
const jsQR = jsQRModule as unknown as typeof jsQRModule.default;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PUBLIC_URL = 'https://id.example.cn';
const P = '88.118.65';

let db: TestDatabase;
let node: TestNode;
let browser: Browser;
let page: Page;
let tmp: string;

beforeAll(async () => {
  await access(CHROMIUM).catch(() => {
    throw new Error(`the QR test needs chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  });
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: false, env: { PUBLIC_URL } });
  const { key } = await onboard(node.url, node.adminKey, makeUscc(6501), P);
  const r = await call(node.url, 'PUT', `/api/handles/${P}/PART-2026-000001`, { key, body: { values: [url('https://example.com/p/1')] } });
  expect(r.status, r.text).toBe(200);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'snode-qr-'));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1200, height: 1200 } });
});

afterAll(async () => {
  await browser?.close();
  await node?.close();
  await db?.drop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function decodePng(bytes: Buffer): { text: string | undefined; width: number } {
  const png = PNG.sync.read(bytes);
  return { text: jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height)?.data, width: png.width };
}

/** Shows the SVG alone on a white page, as a browser draws it, and reads the screenshot. */
async function readInBrowser(svg: string): Promise<{ text: string | undefined; width: number }> {
  await page.setContent(`<!doctype html><body style="margin:0;background:#fff">${svg}</body>`);
  const shot = await page.locator('svg').screenshot();
  return decodePng(shot);
}

const CLI_ENV = () => ({ DATABASE_URL: db.url, API_KEY_SECRET: 'test-secret-test-secret-test-secret-0123', NODE_PREFIX: '88.118', PUBLIC_URL, LOG_LEVEL: 'warn' });
const EXPECTED = `${PUBLIC_URL}/${P}/PART-2026-000001`;

describe('QR codes drawn by a browser', () => {
  it('the served SVG reads back as the URL at several sizes and levels', async () => {
    for (const [size, ecc] of [[120, 'L'], [256, 'M'], [333, 'Q'], [800, 'H']] as const) {
      const response = await fetch(`${node.url}/${P}/PART-2026-000001?qr=svg&size=${size}&ecc=${ecc}`);
      expect(response.status).toBe(200);
      const read = await readInBrowser(await response.text());
      expect(read.width).toBe(size);
      expect(read.text, `${size} ${ecc}`).toBe(EXPECTED);
    }
  });

  it('the browser shows the PNG the node serves as the same code', async () => {
    const viewer = await browser.newPage();
    try {
      await viewer.goto(`${node.url}/${P}/PART-2026-000001?qr=png&size=400&ecc=Q`);
      const shot = await viewer.locator('img').screenshot();
      expect(decodePng(shot).text).toBe(EXPECTED);
    } finally {
      await viewer.close();
    }
  });
});

describe('snode qr', () => {
  it('writes a PNG file and prints the URL it encodes', async () => {
    const file = path.join(tmp, 'part.png');
    const r = await runCli(['qr', `${P.toLowerCase()}/PART-2026-000001`, '--out', file, '--size', '300', '--ecc', 'h'], CLI_ENV());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${EXPECTED}\n`);
    expect(decodePng(await readFile(file))).toEqual({ text: EXPECTED, width: 300 });
  });

  it('writes SVG to standard output, the same code the node serves', async () => {
    const r = await runCli(['qr', `${P}/PART-2026-000001`, '--size', '200'], CLI_ENV());
    expect(r.code, r.stderr).toBe(0);
    const served = await (await fetch(`${node.url}/${P}/PART-2026-000001?qr=svg&size=200`)).text();
    expect(r.stdout).toBe(served);
    expect((await readInBrowser(r.stdout)).text).toBe(EXPECTED);
  });

  it('refuses a handle the node does not hold (exit 1) and bad options (exit 2)', async () => {
    const unknown = await runCli(['qr', `${P}/NO-SUCH`, '--format', 'svg'], CLI_ENV());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/HANDLE_NOT_FOUND/);
    expect(unknown.stdout).toBe('');
    const small = await runCli(['qr', `${P}/PART-2026-000001`, '--size', '5'], CLI_ENV());
    expect(small.code).toBe(2);
    expect(small.stderr).toMatch(/32 to 2048/);
    const level = await runCli(['qr', `${P}/PART-2026-000001`, '--ecc', 'X'], CLI_ENV());
    expect(level.code).toBe(2);
    const { PUBLIC_URL: _unused, ...noPublic } = CLI_ENV();
    const warned = await runCli(['qr', `${P}/PART-2026-000001`, '--out', path.join(tmp, 'x.svg')], noPublic);
    expect(warned.code, warned.stderr).toBe(0);
    expect(warned.stderr).toMatch(/PUBLIC_URL is not set/);
    expect(warned.stdout).toBe(`http://127.0.0.1:8080/${P}/PART-2026-000001\n`);
  });
});
