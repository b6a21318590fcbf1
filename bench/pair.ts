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
import { send, withNodeLog, warmSet, fmt, type MeasureOptions } from './measure.js';
import type { ActiveNode } from './nodes.js';
import { MemorySampler } from './proc-stats.js';
import { note } from './progress.js';
import type { ScenarioResult } from './report.js';
import type { Scenario, SetInfo } from './scenarios.js';
import { addCounts, runSlices, sliceSide, summarize, warmUpSide, type SliceSide, type SlicedSide } from './slices.js';

/** Seconds of warm-up per node at most (--warmup is for one long measurement). */
const PAIR_WARMUP_MAX = 1;

export interface PairOptions extends MeasureOptions {
  /** Measured slices on each node. */
  slices: number;
  /** Seconds per slice. */
  slice: number;
}

/** One node of the pair, summed over its slices. */
export interface PairSide extends SlicedSide {
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

  const plans = [baselineNode, node].map((n) => ({ side: sliceSide(n.label, n, plan, scenario.expectedStatus), warm: undefined as PairSide['warm'] | undefined }));
  const sides = plans.map((p) => p.side) as [SliceSide, SliceSide];
  try {
    // One warm pass each, one after the other: the second finds Redis warm and takes half as long
    // (both at once took longer than the two in turn). Then a short warm-up each: the interleaved
    // slices that follow keep both warm.
    for (const p of plans) {
      if (!scenario.warm) break;
      const warmed = await warmSet(scenario, p.side.node, set, options);
      if (typeof warmed === 'string') return withNodeLog(p.side.node, failed(`${p.side.node.label}: ${warmed}`));
      p.warm = warmed;
    }
    const warmup = Math.min(options.warmup, PAIR_WARMUP_MAX);
    for (const side of sides) {
      // From here on, each node's peak covers its warm-up and its slices, as in the other scenarios.
      if (side.node.pid !== undefined) side.sampler = new MemorySampler(side.node.pid).start();
      await warmUpSide(scenario.name, side, warmup, options);
    }

    const order = await runSlices(scenario.name, sides, options);

    const summary = (k: number): PairSide => ({ ...summarize(plans[k]!.side), warm: plans[k]!.warm ?? { requests: 0, seconds: 0, via: 'none' } });
    const b = summary(0);
    const m = summary(1);
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
        unexpectedStatus: b.unexpectedStatus + m.unexpectedStatus,
        connErrorKinds: addCounts(b.connErrorKinds, m.connErrorKinds),
      },
      ...(m.peakRssMiB !== undefined ? { peakRssMiB: m.peakRssMiB } : {}),
      ...(m.nodeCpuPct !== undefined ? { nodeCpuPct: m.nodeCpuPct } : {}),
      benchCpuPct: m.benchCpuPct,
      ...(m.otherCpuPct !== undefined ? { otherCpuPct: m.otherCpuPct } : {}),
      ...(plans[1]!.warm ? { warm: plans[1]!.warm } : {}),
      pair,
    };
    const troubled = sides.find((s) => s.connErrors > 0 || s.node.alive?.() === false);
    return troubled ? withNodeLog(troubled.node, result) : result;
  } finally {
    for (const side of sides) side.sampler?.stop();
  }
}
