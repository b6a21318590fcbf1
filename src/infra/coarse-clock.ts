/**
 * A clock read once every few milliseconds instead of on every call. Reading the time is not
 * free on a virtual machine, and the resolution hot path needs it only to compare against TTLs
 * counted in seconds, so it may lag by at most TICK_MS.
 */
const TICK_MS = 25;

let now = Date.now();
const timer = setInterval(() => {
  now = Date.now();
}, TICK_MS);
timer.unref();

export function coarseNow(): number {
  return now;
}
