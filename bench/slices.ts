/**
 * Interleaved slices (ABBA) of two loads, shared by resolve-l1-nocount (the same plan on two nodes,
 * bench/pair.ts) and by every scenario judged against the ceiling (the scenario's plan and the
 * ceiling's on the same node, bench/measure.ts). This VM's speed swings by tens of percent within
 * seconds; two loads measured in short alternating slices sit under the same drift, and the order
 * of each pair of slices flips (A B, B A, A B, ...) so a steady drift favours neither.
 */
import { LatencyHistogram, type Percentiles } from './histogram.js';
import { runLoad } from './load.js';
import { fmt, unexpected } from './measure.js';
import type { ActiveNode } from './nodes.js';
import { MemorySampler, startCpuMeter } from './proc-stats.js';
import { progress } from './progress.js';
import type { RequestPlan } from './scenarios.js';

export interface SliceOptions {
  connections: number;
  signal: AbortSignal;
  /** Measured slices of each side. */
  slices: number;
  /** Seconds per slice. */
  slice: number;
}

/** One side summed over its slices. */
export interface SlicedSide {
  config: string;
  /** Responses over all slices / seconds over all slices. */
  reqPerSec: number;
  requests: number;
  seconds: number;
  /** Each slice's req/s, in slice order. */
  sliceReqPerSec: number[];
  latencyMs: Percentiles;
  errors: number;
  unexpectedStatus: number;
  statuses: Record<string, number>;
  connErrors: number;
  timeouts: number;
  connErrorKinds: Record<string, number>;
  /** Means over the slices, in % of one core. */
  nodeCpuPct?: number;
  benchCpuPct: number;
  otherCpuPct?: number;
  peakRssMiB?: number;
}

export interface SliceSide {
  label: string;
  node: ActiveNode;
  plan: RequestPlan;
  expectedStatus: number;
  histogram: LatencyHistogram;
  offset: number;
  requests: number;
  seconds: number;
  slices: number[];
  statuses: Record<string, number>;
  unexpected: number;
  connErrors: number;
  timeouts: number;
  connErrorKinds: Record<string, number>;
  cpu: Array<{ nodeCpuPct?: number; benchCpuPct: number; otherCpuPct?: number }>;
  sampler: MemorySampler | undefined;
}

export const sliceSide = (label: string, node: ActiveNode, plan: RequestPlan, expectedStatus: number): SliceSide => ({
  label,
  node,
  plan,
  expectedStatus,
  histogram: new LatencyHistogram(),
  offset: 0,
  requests: 0,
  seconds: 0,
  slices: [],
  statuses: {},
  unexpected: 0,
  connErrors: 0,
  timeouts: 0,
  connErrorKinds: {},
  cpu: [],
  sampler: undefined,
});

const mean = (xs: Array<number | undefined>): number | undefined => {
  const known = xs.filter((x): x is number => x !== undefined);
  return known.length ? Math.round(known.reduce((a, b) => a + b, 0) / known.length) : undefined;
};

const add = (into: Record<string, number>, from: Record<string, number>): void => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

/** Unmeasured load on one side; the side's rotation continues where it stopped. */
export async function warmUpSide(name: string, side: SliceSide, seconds: number, options: Pick<SliceOptions, 'connections' | 'signal'>): Promise<void> {
  if (seconds <= 0) return;
  const up = await runLoad({
    baseUrl: side.node.url,
    plan: side.plan,
    connections: options.connections,
    duration: seconds,
    offset: side.offset,
    signal: options.signal,
    onSecond: (s, rate) => progress(`[${name}] warm-up of ${side.label} ${s}/${seconds} s, ${fmt(rate)} req/s`),
  });
  side.offset = up.next;
}

/** The slices, alternating A B, B A, ...; returns which side ran first in each pair. */
export async function runSlices(name: string, sides: [SliceSide, SliceSide], options: SliceOptions): Promise<Array<[string, string]>> {
  const [a, b] = sides;
  const order: Array<[string, string]> = [];
  for (let k = 0; k < options.slices; k++) {
    const turn = k % 2 === 0 ? [a, b] : [b, a];
    order.push([turn[0]!.label, turn[1]!.label]);
    for (const side of turn) {
      const cpu = startCpuMeter(side.node.pid);
      const load = await runLoad({
        baseUrl: side.node.url,
        plan: side.plan,
        connections: options.connections,
        duration: options.slice,
        offset: side.offset,
        signal: options.signal,
        histogram: side.histogram,
        onSecond: (s, rate) => progress(`[${name} @ ${side.label}] slice ${k + 1}/${options.slices} ${s}/${options.slice} s, ${fmt(rate)} req/s`),
      });
      side.cpu.push(cpu());
      side.offset = load.next;
      side.requests += load.requests;
      side.seconds += load.durationS;
      side.slices.push(load.durationS > 0 ? Math.round(load.requests / load.durationS) : 0);
      add(side.statuses, load.statuses);
      side.unexpected += unexpected(load, side.expectedStatus);
      side.connErrors += load.connErrors;
      side.timeouts += load.timeouts;
      add(side.connErrorKinds, load.errorKinds);
    }
  }
  progress.done();
  return order;
}

/** A side's sums; stops its memory sampler. */
export function summarize(side: SliceSide): SlicedSide {
  const memory = side.sampler?.stop();
  side.sampler = undefined;
  const nodeCpuPct = mean(side.cpu.map((c) => c.nodeCpuPct));
  const otherCpuPct = mean(side.cpu.map((c) => c.otherCpuPct));
  return {
    config: side.label,
    reqPerSec: side.seconds > 0 ? Math.round(side.requests / side.seconds) : 0,
    requests: side.requests,
    seconds: Math.round(side.seconds * 100) / 100,
    sliceReqPerSec: side.slices,
    latencyMs: side.histogram.percentiles(),
    errors: side.connErrors + side.unexpected,
    unexpectedStatus: side.unexpected,
    statuses: side.statuses,
    connErrors: side.connErrors,
    timeouts: side.timeouts,
    connErrorKinds: side.connErrorKinds,
    ...(nodeCpuPct !== undefined ? { nodeCpuPct } : {}),
    benchCpuPct: mean(side.cpu.map((c) => c.benchCpuPct)) ?? 0,
    ...(otherCpuPct !== undefined ? { otherCpuPct } : {}),
    ...(memory?.peakRssMiB !== undefined ? { peakRssMiB: memory.peakRssMiB } : {}),
  };
}

/** Counts by kind, added (two sides' error kinds: a kind both saw counts both). */
export function addCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const sum = { ...a };
  add(sum, b);
  return sum;
}
