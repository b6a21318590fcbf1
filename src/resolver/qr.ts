/**
 * QR codes of identifiers, for printing on parts and packaging: the code holds the node's public
 * resolution URL of the handle. The symbol itself (version, mask, Reed-Solomon) comes from the
 * `qrcode` package; the image is drawn here from its module matrix: SVG as filled runs, PNG as a
 * 1-bit greyscale image with whole pixels per module (qrcode's own PNG writer blocked the event
 * loop for a median 12 ms at 256 px and 600 ms at 2048 px on this machine; this, 1.2 and 8 ms).
 */
import { createHash } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import QRCode from 'qrcode';
import type { Handle } from '../handle/handle.js';
import { AppError } from '../infra/errors.js';

export const QR_FORMATS = ['svg', 'png'] as const;
export const QR_ECC_LEVELS = ['L', 'M', 'Q', 'H'] as const;
export type QrFormat = (typeof QR_FORMATS)[number];
export type QrEcc = (typeof QR_ECC_LEVELS)[number];

/** Image width and height in pixels (SVG: its width and height attributes). */
export const QR_SIZE = { min: 32, max: 2048, default: 256 } as const;
export const QR_DEFAULT_ECC: QrEcc = 'M';
/** Quiet zone around the symbol, in modules: ISO/IEC 18004 asks for 4. */
export const QR_MARGIN = 4;

export interface QrOptions {
  format: QrFormat;
  size: number;
  ecc: QrEcc;
}

export interface QrImage {
  body: Buffer;
  contentType: string;
}

const bad = (code: string, message: string) => new AppError(code, message, 400);

/** The options of ?qr=svg|png&size=N&ecc=L|M|Q|H, as sent (text), with bounds and clear refusals. */
export function qrOptions(query: { qr?: unknown; size?: unknown; ecc?: unknown }): QrOptions {
  const format = String(query.qr).toLowerCase();
  if (!(QR_FORMATS as readonly string[]).includes(format)) throw bad('INVALID_QR_FORMAT', `qr must be svg or png, not "${String(query.qr).slice(0, 32)}"`);
  let size: number = QR_SIZE.default;
  if (query.size !== undefined) {
    const text = String(query.size);
    size = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
    if (!(size >= QR_SIZE.min && size <= QR_SIZE.max)) {
      throw bad('INVALID_QR_SIZE', `size is the image width in pixels: a whole number from ${QR_SIZE.min} to ${QR_SIZE.max}, not "${text.slice(0, 32)}"`);
    }
  }
  let ecc: QrEcc = QR_DEFAULT_ECC;
  if (query.ecc !== undefined) {
    const text = String(query.ecc).toUpperCase();
    if (!(QR_ECC_LEVELS as readonly string[]).includes(text)) {
      throw bad('INVALID_QR_ECC', `ecc is the error correction level: L (7%), M (15%), Q (25%) or H (30%), not "${String(query.ecc).slice(0, 32)}"`);
    }
    ecc = text as QrEcc;
  }
  return { format: format as QrFormat, size, ecc };
}

/** The node's public URL of a handle, as GET /{handle} serves it (each suffix segment percent-encoded). */
export function resolutionUrl(baseUrl: string, handle: Handle): string {
  const suffix = handle.suffix.split('/').map(encodeURIComponent).join('/');
  return `${baseUrl.replace(/\/+$/, '')}/${handle.prefix}/${suffix}`;
}

/** A strong entity tag of the image: it depends on nothing but what it encodes and how. */
export function qrEtag(text: string, options: QrOptions): string {
  return `"qr-${createHash('sha256').update(`${options.format}\n${options.size}\n${options.ecc}\n${text}`).digest('base64url').slice(0, 22)}"`;
}

interface Symbol {
  /** Modules per side, without the quiet zone. */
  size: number;
  dark(row: number, column: number): boolean;
}

function symbol(text: string, ecc: QrEcc): Symbol {
  let code;
  try {
    code = QRCode.create(text, { errorCorrectionLevel: ecc });
  } catch (err) {
    throw bad('QR_DATA_TOO_LONG', `the URL does not fit in a QR code at error correction level ${ecc}: ${(err as Error).message}`);
  }
  const { size, data } = code.modules;
  return { size, dark: (row, column) => data[row * size + column] === 1 };
}

/** Renders the code; refuses a size too small for one pixel per module (with the least that fits). */
export function renderQr(text: string, options: QrOptions): QrImage {
  const code = symbol(text, options.ecc);
  const modules = code.size + 2 * QR_MARGIN;
  if (options.size < modules) {
    throw bad('QR_SIZE_TOO_SMALL', `this code is ${code.size} modules wide plus a ${QR_MARGIN}-module quiet zone on each side: size must be at least ${modules} at error correction level ${options.ecc}`);
  }
  return options.format === 'svg'
    ? { body: Buffer.from(svg(code, options.size)), contentType: 'image/svg+xml' }
    : { body: png(code, options.size), contentType: 'image/png' };
}

/** One filled path of dark runs per row, in module units, scaled by the viewBox. */
function svg(code: Symbol, pixels: number): string {
  const modules = code.size + 2 * QR_MARGIN;
  let path = '';
  for (let row = 0; row < code.size; row += 1) {
    for (let column = 0; column < code.size; ) {
      if (!code.dark(row, column)) {
        column += 1;
        continue;
      }
      let end = column + 1;
      while (end < code.size && code.dark(row, end)) end += 1;
      path += `M${column + QR_MARGIN} ${row + QR_MARGIN}h${end - column}v1h-${end - column}z`;
      column = end;
    }
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${pixels}" height="${pixels}" viewBox="0 0 ${modules} ${modules}" shape-rendering="crispEdges">` +
    `<rect width="${modules}" height="${modules}" fill="#fff"/><path fill="#000" d="${path}"/></svg>\n`
  );
}

/**
 * A 1-bit greyscale PNG of exactly `pixels` square: whole pixels per module, the symbol centred,
 * the quiet zone taking what is left over (never less than 4 modules).
 */
function png(code: Symbol, pixels: number): Buffer {
  const scale = Math.floor(pixels / (code.size + 2 * QR_MARGIN));
  const offset = Math.floor((pixels - scale * code.size) / 2);
  const rowBytes = Math.ceil(pixels / 8);
  const stride = rowBytes + 1; // each row starts with its filter type (0: none)
  const raw = Buffer.alloc(stride * pixels, 0xff); // white (1 bits)
  for (let y = 0; y < pixels; y += 1) raw[y * stride] = 0;
  const line = Buffer.alloc(rowBytes);
  for (let row = 0; row < code.size; row += 1) {
    line.fill(0xff);
    for (let column = 0; column < code.size; column += 1) {
      if (!code.dark(row, column)) continue;
      for (let x = offset + column * scale, end = x + scale; x < end; x += 1) line[x >> 3]! &= ~(0x80 >> (x & 7));
    }
    for (let y = offset + row * scale, end = y + scale; y < end; y += 1) line.copy(raw, y * stride + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(pixels, 0);
  header.writeUInt32BE(pixels, 4);
  header.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, no filter, no interlace
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
