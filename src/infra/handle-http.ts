/** Handle helpers shared by the registry's and the resolver's routes. */
import { InvalidHandleError, parseHandle, type Handle } from '../handle/handle.js';
import { errors } from './errors.js';

/** parseHandle, with the typed error turned into 400 responseCode 102. */
export function parseHandleOrThrow(input: string): Handle {
  try {
    return parseHandle(input);
  } catch (err) {
    if (err instanceof InvalidHandleError) throw errors.invalidHandle(`invalid handle: ${err.message}`);
    throw err;
  }
}

/** The ETag of a record: its version as a strong entity tag. */
export const etag = (version: number): string => `"${version}"`;
