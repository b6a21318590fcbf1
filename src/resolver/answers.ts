/**
 * Turning a cache entry into what one caller may see. The public, unfiltered view is the entry's
 * bytes as they are; filters and owners' views (private values) are built from its values.
 */
import { filterValues, visibleValues, type ValueFilter } from '../handle/filters.js';
import type { HandleValue } from '../handle/values.js';
import { ResponseCode } from '../infra/errors.js';
import type { CacheEntry, FoundEntry } from './cache-entry.js';
import type { ResolutionBody } from './protobuf.js';

export interface View {
  /** The caller owns the handle's prefix: values that deny public read are shown. */
  owner: boolean;
  filter?: ValueFilter;
}

/** True when the entry's ready bytes are exactly this caller's answer. */
export function isPublicView(entry: CacheEntry, view: View): boolean {
  if (!entry.found) return true;
  const filtered = (view.filter?.types?.length ?? 0) > 0 || (view.filter?.indexes?.length ?? 0) > 0;
  return !filtered && !(view.owner && entry.hasPrivate);
}

/** The answer body for a view that is not the public one. */
export function viewBody(entry: FoundEntry, view: View): ResolutionBody & { values: HandleValue[] } {
  const visible = visibleValues(entry.values(), view.owner);
  const values = filterValues(visible, view.filter ?? {});
  return { responseCode: values.length > 0 ? ResponseCode.SUCCESS : ResponseCode.VALUES_NOT_FOUND, handle: entry.handle, values };
}
