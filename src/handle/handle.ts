/** Handle-style identifiers `PREFIX/SUFFIX`: parsing and normalisation. Pure, no I/O. */

export const MAX_HANDLE_BYTES = 255;

export interface Handle {
  /** Upper-cased prefix, segments kept as written (`88.101.0042` keeps its zeros). */
  readonly prefix: string;
  /** Case-sensitive suffix, exactly as given. */
  readonly suffix: string;
  /** `prefix/suffix`, the normalised form used as key everywhere. */
  readonly handle: string;
}

/** The one error parsing can throw: callers map it to responseCode 102. */
export class InvalidHandleError extends Error {
  override readonly name = 'InvalidHandleError';
  constructor(readonly input: string, reason: string) {
    super(reason);
  }
}

const SEGMENT = /^[A-Za-z0-9]+$/;
// C0 controls, DEL and C1 controls. Lone surrogates cannot be encoded as UTF-8, so they are refused too.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Validates and upper-cases a prefix such as `88.118.8`; throws InvalidHandleError. */
export function normalisePrefix(input: string): string {
  if (input.length === 0) throw new InvalidHandleError(input, 'prefix is empty');
  const segments = input.split('.');
  for (const segment of segments) {
    if (segment.length === 0) throw new InvalidHandleError(input, 'prefix has an empty segment');
    if (!SEGMENT.test(segment)) {
      throw new InvalidHandleError(input, 'prefix segments may hold only ASCII letters and digits');
    }
  }
  return input.toUpperCase();
}

// The common case in one pass each: an ASCII prefix of dotted segments, a printable-ASCII suffix.
const SIMPLE_PREFIX = /^[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*$/;
const SIMPLE_SUFFIX = /^[\x20-\x7e]+$/;
const LOWER = /[a-z]/;
// "." or ".." as a /-separated segment of the suffix: proxies and clients rewrite such paths
// (/api/handles/88.118.8/../x reaches /api/handles/x), so one handle would read differently on
// different routes. Refused everywhere instead.
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)/;

/** Parses `PREFIX/SUFFIX`; throws InvalidHandleError with a reason a client can act on. */
export function parseHandle(input: string): Handle {
  // Resolution parses every request's handle: a fast path for plain ASCII handles, with the same
  // result as the full checks below (which also word the errors).
  const slash = input.indexOf('/');
  if (slash > 0 && input.length <= MAX_HANDLE_BYTES) {
    const rawPrefix = input.slice(0, slash);
    const suffix = input.slice(slash + 1);
    if (SIMPLE_PREFIX.test(rawPrefix) && SIMPLE_SUFFIX.test(suffix) && (suffix.indexOf('.') < 0 || !DOT_SEGMENT.test(suffix))) {
      const prefix = LOWER.test(rawPrefix) ? rawPrefix.toUpperCase() : rawPrefix;
      return { prefix, suffix, handle: prefix === rawPrefix ? input : `${prefix}/${suffix}` };
    }
  }
  return parseHandleFully(input);
}

function parseHandleFully(input: string): Handle {
  const slash = input.indexOf('/');
  if (slash < 0) throw new InvalidHandleError(input, 'a handle is PREFIX/SUFFIX: no "/" found');
  if (slash === 0) throw new InvalidHandleError(input, 'prefix is empty');
  const prefix = normalisePrefix(input.slice(0, slash));
  const suffix = input.slice(slash + 1);
  if (suffix.length === 0) throw new InvalidHandleError(input, 'suffix is empty');
  if (CONTROL.test(suffix)) throw new InvalidHandleError(input, 'suffix contains a control character');
  if (LONE_SURROGATE.test(suffix)) throw new InvalidHandleError(input, 'suffix is not valid UTF-8');
  if (DOT_SEGMENT.test(suffix)) throw new InvalidHandleError(input, 'suffix has a "." or ".." path segment');
  const handle = `${prefix}/${suffix}`;
  const bytes = Buffer.byteLength(handle, 'utf8');
  if (bytes > MAX_HANDLE_BYTES) {
    throw new InvalidHandleError(input, `handle is ${bytes} bytes; at most ${MAX_HANDLE_BYTES} are allowed`);
  }
  return { prefix, suffix, handle };
}

/** True when `prefix` equals `ancestor` or lies below it (`88.118.8` is under `88.118`). */
export function isPrefixUnder(prefix: string, ancestor: string): boolean {
  return prefix === ancestor || prefix.startsWith(`${ancestor}.`);
}

/** True when `prefix` is exactly one segment below `parent` (an enterprise prefix of a node). */
export function isChildPrefix(prefix: string, parent: string): boolean {
  return prefix.startsWith(`${parent}.`) && !prefix.slice(parent.length + 1).includes('.');
}
