/** One scenario on one node: check the first answer, warm the set, warm up, measure. */
import { runLoad, type LoadResult } from './load.js';
import type { ActiveNode } from './nodes.js';
import { MemorySampler, startCpuMeter } from './proc-stats.js';
import { note, progress } from './progress.js';
import type { ScenarioResult } from './report.js';
import type { Probe, RequestPlan, Scenario, SetInfo } from './scenarios.js';

export interface MeasureOptions {
  connections: number;
  duration: number;
  warmup: number;
  signal: AbortSignal;
}

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
  const via = plan.method === 'POST' ? 'POST /api/resolve' : `GET${plan.headers.accept ? ` (${plan.headers.accept})` : ''}`;
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

export async function measure(scenario: Scenario, node: ActiveNode, set: SetInfo, options: MeasureOptions): Promise<ScenarioResult> {
  const notes = [node.note, scenario.caveat?.(set)];
  const base: ScenarioResult = { name: scenario.name, config: node.label, status: 'ok', expectedStatus: scenario.expectedStatus };
  const failed = (why: string): ScenarioResult => ({ ...base, status: 'failed', note: [...notes, why].filter(Boolean).join('; ') });
  const plan = scenario.plan(set);
  const first = plan.at(0);
  const wrong = scenario.check(await send(node.url, plan, 0), first, set);
  if (wrong) return failed(`${plan.method} ${first.path} ${wrong}`);

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

    const cpu = startCpuMeter(node.pid);
    const load = await runLoad({
      baseUrl: node.url,
      plan,
      connections: options.connections,
      duration: options.duration,
      offset,
      signal: options.signal,
      onSecond: (s, rate) => progress(`[${scenario.name} @ ${node.label}] ${s}/${options.duration} s, ${fmt(rate)} req/s`),
    });
    progress.done();
    const cpuUse = cpu();
    const memory = sampler?.stop();

    // 30% of a core elsewhere while the node alone should be working: the run was disturbed.
    if (scenario.selfContained && (cpuUse.otherCpuPct ?? 0) > 30) {
      notes.push(`other processes used ${cpuUse.otherCpuPct}% of a core meanwhile: disturbed, rerun on a quiet machine`);
      note(`[${scenario.name}] other processes used ${cpuUse.otherCpuPct}% of a core during the measurement: the figures are disturbed`);
    }
    const alive = node.alive?.() ?? true;
    if (!alive) notes.push('the node died during the measurement');
    // Named only when clearly higher: RSS rarely falls back after a pass, so the two are often close.
    if (warm?.peakRssMiB !== undefined && warm.peakRssMiB > (memory?.peakRssMiB ?? 0) + 20) notes.push(`node RSS peaked at ${warm.peakRssMiB} MiB during the warm pass (${warm.via})`);
    const wrongStatus = unexpected(load, scenario.expectedStatus);
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
    };
    return load.connErrors > 0 || !alive ? withNodeLog(node, result) : result;
  } finally {
    sampler?.stop();
  }
}
