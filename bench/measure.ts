/** One scenario on one node: check the first answer, warm the set, warm up, measure. */
import { runLoad, type LoadResult } from './load.js';
import type { ActiveNode } from './nodes.js';
import { MemorySampler, startCpuMeter } from './proc-stats.js';
import { note, progress } from './progress.js';
import type { ScenarioResult } from './report.js';
import { scenario as scenarioNamed, type Probe, type RequestPlan, type Scenario, type SetInfo, type Yardstick } from './scenarios.js';
import { addCounts, runSlices, sliceSide, summarize, warmUpSide } from './slices.js';

export interface MeasureOptions {
  connections: number;
  duration: number;
  warmup: number;
  signal: AbortSignal;
  /**
   * Seconds per slice wanted when the scenario is measured interleaved with the ceiling (every
   * scenario judged against it): `duration` is cut into max(2, round(duration / slice)) slices.
   */
  slice?: number;
}

/** Seconds of ceiling warm-up at most before the interleaved slices. */
const CEILING_WARMUP_MAX = 1;

export const fmt = (n: number): string => n.toLocaleString('en');

export async function send(baseUrl: string, plan: RequestPlan, i: number): Promise<Probe> {
  const request = plan.at(i);
  const response = await fetch(`${baseUrl}${request.path}`, { method: plan.method, headers: plan.headers, ...(request.body !== undefined ? { body: request.body } : {}) });
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: Buffer.from(await response.arrayBuffer()) };
}

/** Whether POST /api/resolve answers here: warming a large set through it is far quicker. */
const batchSupport = new Map<string, Promise<boolean>>();
function supportsBatch(baseUrl: string, set: SetInfo): Promise<boolean> {
  let known = batchSupport.get(baseUrl);
  if (!known) {
    known = fetch(`${baseUrl}/api/resolve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ handles: [`${set.prefix}/BENCH-0`] }) })
      .then(async (r) => r.status === 200 && Array.isArray(((await r.json()) as { results?: unknown }).results))
      .catch(() => false);
    batchSupport.set(baseUrl, known);
  }
  return known;
}

export const unexpected = (load: LoadResult, expected: number): number =>
  Object.entries(load.statuses).reduce((sum, [code, count]) => (Number(code) === expected ? sum : sum + count), 0);

/** Connection errors usually mean the node is in trouble: keep what it logged last. */
export function withNodeLog(node: ActiveNode, result: ScenarioResult): ScenarioResult {
  const log = node.logTail?.();
  if (!log) return result;
  note(`[${result.name}] the node's last log lines:\n${log}`);
  return { ...result, nodeLog: log.split('\n') };
}

export type Warmed = NonNullable<ScenarioResult['warm']>;

/** One pass over the scenario's set; a string says why it failed. */
export async function warmSet(scenario: Scenario, node: ActiveNode, set: SetInfo, options: MeasureOptions): Promise<Omit<Warmed, 'peakRssMiB'> | string> {
  const plan = scenario.warm!(set, await supportsBatch(node.url, set));
  const via = plan.method === 'POST' ? 'POST /api/resolve' : `${plan.method}${plan.headers.accept ? ` (${plan.headers.accept})` : ''}`;
  const ids = plan.identifiers ?? plan.size;
  const started = Date.now();
  const pass = await runLoad({
    baseUrl: node.url,
    plan,
    connections: Math.min(options.connections, plan.size),
    amount: plan.size,
    signal: options.signal,
    onSecond: (s, rate, done) => progress(`[${scenario.name}] warming ${fmt(ids)} identifiers via ${via}: ${fmt(done)}/${fmt(plan.size)} requests, ${s} s, ${fmt(rate)} req/s`),
  });
  progress.done();
  const wrongStatus = unexpected(pass, scenario.expectedStatus);
  if (pass.connErrors + wrongStatus > 0) {
    const gone = node.alive?.() === false ? '; the node is no longer running' : '';
    return `warm pass: ${fmt(pass.requests)} answers (by status ${JSON.stringify(pass.statuses)}), ${wrongStatus} unexpected; ${pass.connErrors} connection errors ${JSON.stringify(pass.errorKinds)}${gone}`;
  }
  return { requests: pass.requests, seconds: (Date.now() - started) / 1000, via };
}

export async function measure(scenario: Scenario, node: ActiveNode, set: SetInfo, given: MeasureOptions): Promise<ScenarioResult> {
  const options = scenario.connections ? { ...given, connections: scenario.connections } : given;
  const notes = [node.note, scenario.caveat?.(set)];
  const base: ScenarioResult = { name: scenario.name, config: node.label, status: 'ok', expectedStatus: scenario.expectedStatus };
  const failed = (why: string): ScenarioResult => ({ ...base, status: 'failed', note: [...notes, why].filter(Boolean).join('; ') });
  const plan = scenario.plan(set);
  const first = plan.at(0);
  const wrong = scenario.check(await send(node.url, { ...plan, at: () => first }, 0), first, set);
  if (wrong) return failed(`${plan.method} ${first.path} ${wrong}`);
  // Every scenario but the ceiling is measured in slices interleaved with the ceiling on its own
  // node: the machine's speed drifts too much for a ceiling measured minutes before.
  // A scenario with its own yardstick (register-batch: a bare COPY) is measured against that.
  const ceiling: Yardstick | undefined = scenario.yardstick ?? (scenario.name === 'ceiling' ? undefined : { label: 'ceiling', ...(scenarioNamed('ceiling') as Scenario) });
  const ceilingPlan = ceiling?.plan(set);
  if (ceiling && ceilingPlan) {
    const probe = ceilingPlan.at(0);
    const wrongCeiling = ceiling.check(await send(node.url, { ...ceilingPlan, at: () => probe }, 0), probe, set);
    if (wrongCeiling) {
      // The probe may have left something behind (register-batch: its scratch table).
      await cleanUp(ceiling, node, set, scenario.name);
      return failed(`${ceiling.label}: ${ceilingPlan.method} ${probe.path} ${wrongCeiling}`);
    }
  }

  // Memory is sampled apart during the warm pass: loading the set is not the scenario's load.
  let sampler = node.pid !== undefined ? new MemorySampler(node.pid).start() : undefined;
  try {
    let warm: Warmed | undefined;
    if (scenario.warm) {
      const warmed = await warmSet(scenario, node, set, options);
      if (typeof warmed === 'string') return withNodeLog(node, failed(warmed));
      const peak = sampler?.stop().peakRssMiB;
      warm = { ...warmed, ...(peak !== undefined ? { peakRssMiB: peak } : {}) };
      if (node.pid !== undefined) sampler = new MemorySampler(node.pid).start();
    }

    let offset = 0;
    if (options.warmup > 0) {
      const up = await runLoad({
        baseUrl: node.url,
        plan,
        connections: options.connections,
        duration: options.warmup,
        signal: options.signal,
        onSecond: (s, rate) => progress(`[${scenario.name}] warm-up ${s}/${options.warmup} s, ${fmt(rate)} req/s`),
      });
      offset = up.next;
    }

    let load: Pick<LoadResult, 'reqPerSec' | 'requests' | 'durationS' | 'latency' | 'statuses' | 'connErrors' | 'timeouts' | 'errorKinds'>;
    let cpuUse: { nodeCpuPct?: number; benchCpuPct: number; otherCpuPct?: number };
    let interleavedCeiling: ScenarioResult['interleavedCeiling'];
    let ceilingUnexpected = 0;
    if (ceiling && ceilingPlan) {
      const slices = Math.max(2, Math.round(options.duration / (options.slice ?? 2)));
      // A slice must outlast a few of the scenario's slowest requests (register-batch: 1,000 writes each).
      // Whole seconds: autocannon ends a run on its one-second tick, so 3.3 s would run 4.
      const slice = Math.max(scenario.minSlice ?? 0, 1, Math.round(options.duration / slices));
      const own = sliceSide(scenario.name, node, plan, scenario.expectedStatus);
      own.offset = offset;
      const ceil = sliceSide(ceiling.label, node, ceilingPlan, ceiling.expectedStatus);
      await warmUpSide(scenario.name, ceil, Math.min(options.warmup, CEILING_WARMUP_MAX), options);
      const order = await runSlices(scenario.name, [own, ceil], { ...options, slices, slice });
      const s = summarize(own);
      const c = summarize(ceil);
      load = { reqPerSec: s.reqPerSec, requests: s.requests, durationS: s.seconds, latency: s.latencyMs, statuses: s.statuses, connErrors: s.connErrors + c.connErrors, timeouts: s.timeouts + c.timeouts, errorKinds: addCounts(c.connErrorKinds, s.connErrorKinds) };
      // Ceiling answers other than 200 are errors too: the ratio needs both.
      ceilingUnexpected = c.unexpectedStatus;
      cpuUse = { ...(s.nodeCpuPct !== undefined ? { nodeCpuPct: s.nodeCpuPct } : {}), benchCpuPct: s.benchCpuPct, ...(s.otherCpuPct !== undefined ? { otherCpuPct: s.otherCpuPct } : {}) };
      interleavedCeiling = { label: ceiling.label, identifiersPerRequest: ceiling.identifiersPerRequest, reqPerSec: c.reqPerSec, requests: c.requests, seconds: c.seconds, latencyMs: c.latencyMs, sliceReqPerSec: c.sliceReqPerSec, scenarioSliceReqPerSec: s.sliceReqPerSec, slices, sliceSeconds: slice, order, errors: c.errors };
      notes.push(
        ceiling.identifiersPerRequest > 1
          ? `${fmt(s.reqPerSec * scenario.identifiersPerRequest)} identifiers/s vs ${ceiling.label} ${fmt(c.reqPerSec * ceiling.identifiersPerRequest)} rows/s on the same node over ${slices} interleaved slices of ${slice} s each, ${options.connections} connections`
          : `${fmt(s.reqPerSec)} req/s vs ${ceiling.label} ${fmt(c.reqPerSec)} req/s on the same node over ${slices} interleaved slices of ${slice} s each`,
      );
    } else {
      const cpu = startCpuMeter(node.pid);
      const single = await runLoad({
        baseUrl: node.url,
        plan,
        connections: options.connections,
        duration: options.duration,
        offset,
        signal: options.signal,
        onSecond: (s, rate) => progress(`[${scenario.name} @ ${node.label}] ${s}/${options.duration} s, ${fmt(rate)} req/s`),
      });
      progress.done();
      cpuUse = cpu();
      load = single;
    }
    const memory = sampler?.stop();

    // 30% of a core elsewhere while the node alone should be working: the run was disturbed.
    // (Not with --url: without the node's pid, its own CPU counts as another process's.)
    if (scenario.selfContained && node.pid !== undefined && (cpuUse.otherCpuPct ?? 0) > 30) {
      notes.push(`other processes used ${cpuUse.otherCpuPct}% of a core meanwhile: disturbed, rerun on a quiet machine`);
      note(`[${scenario.name}] other processes used ${cpuUse.otherCpuPct}% of a core during the measurement: the figures are disturbed`);
    }
    const alive = node.alive?.() ?? true;
    if (!alive) notes.push('the node died during the measurement');
    // Named only when clearly higher: RSS rarely falls back after a pass, so the two are often close.
    if (warm?.peakRssMiB !== undefined && warm.peakRssMiB > (memory?.peakRssMiB ?? 0) + 20) notes.push(`node RSS peaked at ${warm.peakRssMiB} MiB during the warm pass (${warm.via})`);
    const wrongStatus = Object.entries(load.statuses).reduce((sum, [code, count]) => (Number(code) === scenario.expectedStatus ? sum : sum + count), ceilingUnexpected);
    const joined = notes.filter(Boolean).join('; ');
    const result: ScenarioResult = {
      ...base,
      ...(joined ? { note: joined } : {}),
      reqPerSec: load.reqPerSec,
      identifiersPerSec: load.reqPerSec * scenario.identifiersPerRequest,
      requests: load.requests,
      durationS: load.durationS,
      latencyMs: load.latency,
      statuses: load.statuses,
      errors: load.connErrors + wrongStatus,
      errorDetail: { connErrors: load.connErrors, timeouts: load.timeouts, unexpectedStatus: wrongStatus, connErrorKinds: load.errorKinds },
      ...(memory?.peakRssMiB !== undefined ? { peakRssMiB: memory.peakRssMiB } : {}),
      ...cpuUse,
      ...(warm ? { warm } : {}),
      ...(interleavedCeiling ? { interleavedCeiling } : {}),
    };
    return load.connErrors > 0 || !alive ? withNodeLog(node, result) : result;
  } finally {
    sampler?.stop();
    if (ceiling) await cleanUp(ceiling, node, set, scenario.name);
  }
}

function cleanUp(yardstick: Yardstick, node: ActiveNode, set: SetInfo, name: string): Promise<void> {
  return (yardstick.cleanup?.(node.url, set) ?? Promise.resolve()).catch((err: unknown) => note(`[${name}] ${yardstick.label} cleanup failed: ${(err as Error).message}`));
}
