/**
 * A pair scenario (resolve-l1-nocount): the same plan on two nodes running side by side, the
 * baseline (default) and the scenario's configuration (no-count), measured in short interleaved
 * slices and compared on the sums. Single 10 s runs on a shared 2-core machine drift by +-10%
 * from one to the next, more than the few percent this comparison is about; slices of a few
 * seconds, alternated, put both nodes under the same drift.
 *
 * The order of each pair of slices alternates (A B, B A, A B, ...: an ABBA design), so a drift
 * that is steady over the run favours neither node. Only the node in its slice is loaded; the
 * other one idles (its timers use next to nothing, and that counts as "other" CPU).
 */
import { LatencyHistogram, type Percentiles } from './histogram.js';
import { runLoad } from './load.js';
import { fmt, send, unexpected, warmSet, withNodeLog, type MeasureOptions } from './measure.js';
import type { ActiveNode } from './nodes.js';
import { MemorySampler, startCpuMeter } from './proc-stats.js';
import { note, progress } from './progress.js';
import type { ScenarioResult } from './report.js';
import type { Scenario, SetInfo } from './scenarios.js';

/** Seconds of warm-up per node at most (--warmup is for one long measurement). */
const PAIR_WARMUP_MAX = 1;

export interface PairOptions extends MeasureOptions {
  /** Measured slices on each node. */
  slices: number;
  /** Seconds per slice. */
  slice: number;
}

/** One node of the pair, summed over its slices. */
export interface PairSide {
  config: string;
  /** Responses over all slices / seconds over all slices. */
  reqPerSec: number;
  requests: number;
  seconds: number;
  /** Each slice's req/s, in slice order. */
  sliceReqPerSec: number[];
  latencyMs: Percentiles;
  errors: number;
  statuses: Record<string, number>;
  connErrors: number;
  timeouts: number;
  connErrorKinds: Record<string, number>;
  /** Means over the slices, in % of one core. */
  nodeCpuPct?: number;
  benchCpuPct: number;
  otherCpuPct?: number;
  peakRssMiB?: number;
  warm: { requests: number; seconds: number; via: string };
}

export interface PairDetail {
  slices: number;
  sliceSeconds: number;
  /** Which node ran first in each pair of slices. */
  order: Array<[string, string]>;
  baseline: PairSide;
  measured: PairSide;
  /** baseline req/s / measured req/s over the sums. */
  ratio: number;
}

interface Side {
  node: ActiveNode;
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
  warm?: { requests: number; seconds: number; via: string };
}

const mean = (xs: Array<number | undefined>): number | undefined => {
  const known = xs.filter((x): x is number => x !== undefined);
  return known.length ? Math.round(known.reduce((a, b) => a + b, 0) / known.length) : undefined;
};

const add = (into: Record<string, number>, from: Record<string, number>): void => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

export async function measurePair(scenario: Scenario, baselineNode: ActiveNode, node: ActiveNode, set: SetInfo, options: PairOptions): Promise<ScenarioResult> {
  const notes: Array<string | undefined> = [node.note, scenario.caveat?.(set)];
  const base: ScenarioResult = { name: scenario.name, config: node.label, status: 'ok', expectedStatus: scenario.expectedStatus };
  const failed = (why: string): ScenarioResult => ({ ...base, status: 'failed', note: [...notes, why].filter(Boolean).join('; ') });
  const plan = scenario.plan(set);
  const first = plan.at(0);
  for (const n of [baselineNode, node]) {
    const wrong = scenario.check(await send(n.url, plan, 0), first, set);
    if (wrong) return failed(`${n.label}: ${plan.method} ${first.path} ${wrong}`);
  }

  const sides: Side[] = [baselineNode, node].map((n) => ({
    node: n,
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
  }));
  const [baseline, measured] = sides as [Side, Side];
  try {
    // One warm pass each, one after the other: the second finds Redis warm and takes half as long
    // (both at once took longer than the two in turn). Then a short warm-up each: the interleaved
    // slices that follow keep both warm.
    for (const side of sides) {
      if (!scenario.warm) break;
      const warmed = await warmSet(scenario, side.node, set, options);
      if (typeof warmed === 'string') return withNodeLog(side.node, failed(`${side.node.label}: ${warmed}`));
      side.warm = warmed;
    }
    const warmup = Math.min(options.warmup, PAIR_WARMUP_MAX);
    for (const side of sides) {
      // From here on, each node's peak covers its warm-up and its slices, as in the other scenarios.
      if (side.node.pid !== undefined) side.sampler = new MemorySampler(side.node.pid).start();
      if (warmup > 0) {
        const up = await runLoad({
          baseUrl: side.node.url,
          plan,
          connections: options.connections,
          duration: warmup,
          signal: options.signal,
          onSecond: (s, rate) => progress(`[${scenario.name}] warm-up of ${side.node.label} ${s}/${warmup} s, ${fmt(rate)} req/s`),
        });
        side.offset = up.next;
      }
    }

    const order: Array<[string, string]> = [];
    for (let k = 0; k < options.slices; k++) {
      const turn = k % 2 === 0 ? [baseline, measured] : [measured, baseline];
      order.push([turn[0]!.node.label, turn[1]!.node.label]);
      for (const side of turn) {
        const cpu = startCpuMeter(side.node.pid);
        const load = await runLoad({
          baseUrl: side.node.url,
          plan,
          connections: options.connections,
          duration: options.slice,
          offset: side.offset,
          signal: options.signal,
          histogram: side.histogram,
          onSecond: (s, rate) => progress(`[${scenario.name} @ ${side.node.label}] slice ${k + 1}/${options.slices} ${s}/${options.slice} s, ${fmt(rate)} req/s`),
        });
        side.cpu.push(cpu());
        side.offset = load.next;
        side.requests += load.requests;
        side.seconds += load.durationS;
        side.slices.push(load.durationS > 0 ? Math.round(load.requests / load.durationS) : 0);
        add(side.statuses, load.statuses);
        side.unexpected += unexpected(load, scenario.expectedStatus);
        side.connErrors += load.connErrors;
        side.timeouts += load.timeouts;
        add(side.connErrorKinds, load.errorKinds);
      }
    }
    progress.done();

    const summary = (side: Side): PairSide => {
      const memory = side.sampler?.stop();
      side.sampler = undefined;
      const nodeCpuPct = mean(side.cpu.map((c) => c.nodeCpuPct));
      const otherCpuPct = mean(side.cpu.map((c) => c.otherCpuPct));
      return {
        config: side.node.label,
        reqPerSec: side.seconds > 0 ? Math.round(side.requests / side.seconds) : 0,
        requests: side.requests,
        seconds: Math.round(side.seconds * 100) / 100,
        sliceReqPerSec: side.slices,
        latencyMs: side.histogram.percentiles(),
        errors: side.connErrors + side.unexpected,
        statuses: side.statuses,
        connErrors: side.connErrors,
        timeouts: side.timeouts,
        connErrorKinds: side.connErrorKinds,
        ...(nodeCpuPct !== undefined ? { nodeCpuPct } : {}),
        benchCpuPct: mean(side.cpu.map((c) => c.benchCpuPct)) ?? 0,
        ...(otherCpuPct !== undefined ? { otherCpuPct } : {}),
        ...(memory?.peakRssMiB !== undefined ? { peakRssMiB: memory.peakRssMiB } : {}),
        warm: side.warm ?? { requests: 0, seconds: 0, via: 'none' },
      };
    };
    const b = summary(baseline);
    const m = summary(measured);
    const ratio = m.reqPerSec > 0 ? Math.round((b.reqPerSec / m.reqPerSec) * 1000) / 1000 : 0;
    const pair: PairDetail = { slices: options.slices, sliceSeconds: options.slice, order, baseline: b, measured: m, ratio };

    for (const s of [b, m]) {
      if ((s.otherCpuPct ?? 0) > 30) {
        notes.push(`other processes used ${s.otherCpuPct}% of a core on average during the ${s.config} slices: disturbed, rerun on a quiet machine`);
        note(`[${scenario.name}] other processes used ${s.otherCpuPct}% of a core during the ${s.config} slices: the figures are disturbed`);
      }
    }
    const dead = sides.filter((s) => s.node.alive?.() === false).map((s) => s.node.label);
    if (dead.length) notes.push(`the ${dead.join(' and ')} node died during the measurement`);
    notes.push(`${b.config} ${fmt(b.reqPerSec)} req/s vs ${m.config} ${fmt(m.reqPerSec)} req/s over ${options.slices} interleaved slices of ${options.slice} s each`);
    const result: ScenarioResult = {
      ...base,
      note: notes.filter(Boolean).join('; '),
      reqPerSec: m.reqPerSec,
      identifiersPerSec: m.reqPerSec * scenario.identifiersPerRequest,
      requests: m.requests,
      durationS: m.seconds,
      latencyMs: m.latencyMs,
      statuses: m.statuses,
      // Errors on either node count: the comparison needs both.
      errors: b.errors + m.errors,
      errorDetail: {
        connErrors: b.connErrors + m.connErrors,
        timeouts: b.timeouts + m.timeouts,
        unexpectedStatus: baseline.unexpected + measured.unexpected,
        connErrorKinds: { ...b.connErrorKinds, ...m.connErrorKinds },
      },
      ...(m.peakRssMiB !== undefined ? { peakRssMiB: m.peakRssMiB } : {}),
      ...(m.nodeCpuPct !== undefined ? { nodeCpuPct: m.nodeCpuPct } : {}),
      benchCpuPct: m.benchCpuPct,
      ...(m.otherCpuPct !== undefined ? { otherCpuPct: m.otherCpuPct } : {}),
      ...(measured.warm ? { warm: measured.warm } : {}),
      pair,
    };
    const troubled = sides.find((s) => s.connErrors > 0 || s.node.alive?.() === false);
    return troubled ? withNodeLog(troubled.node, result) : result;
  } finally {
    for (const side of sides) side.sampler?.stop();
  }
}
