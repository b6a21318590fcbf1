#!/usr/bin/env node
/**
 * `npm run bench -- [options]`: seeds identifiers, runs the scenarios against nodes it starts (or
 * --url), prints a table of each scenario as a ratio to the ceiling measured in the same run, and
 * writes the same as JSON. Exit codes: 0 every scenario ran without errors, 1 a scenario failed or
 * saw errors, 2 bad usage, 130 interrupted.
 */
import { BenchError } from './errors.js';
import { measureImport } from './import.js';
import { measure } from './measure.js';
import { abortStarts, killAllNodes } from './node-process.js';
import { measurePair } from './pair.js';
import { StartedNodes, UrlNode, type NodeSource } from './nodes.js';
import { parseOptions, redactedOptions, UsageError, USAGE, type BenchOptions } from './options.js';
import { note } from './progress.js';
import { judge, machineInfo, table, writeRecord, type RunRecord, type ScenarioResult } from './report.js';
import { scenario, type SetInfo } from './scenarios.js';
import { seed } from './seed.js';
import { measureStats } from './stats.js';
import { measureSyncDrain } from './sync-drain.js';

async function runAll(options: BenchOptions, nodes: NodeSource, signal: AbortSignal, record: RunRecord): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  const set: SetInfo = { prefix: options.prefix, seeded: options.seed, hot: options.hot };
  let seeded = false;
  for (const name of options.scenarios) {
    if (signal.aborted) break;
    const s = scenario(name);
    if (s.needsRedis && !nodes.redis.ok) {
      results.push({ name, config: s.config, status: 'skipped', note: `needs Redis: ${nodes.redis.problem}` });
      note(`[${name}] skipped: needs Redis: ${nodes.redis.problem}`);
      continue;
    }
    const began = Date.now();
    try {
      const seedOn = async (url: string) => {
        if (seeded) return;
        record.seed = await seed(url, await nodes.adminKey(), set.prefix, set.seeded, signal);
        seeded = true;
      };
      let result: ScenarioResult;
      if (s.kind === 'sync-drain') {
        if (options.url) {
          results.push({ name, config: s.config, status: 'skipped', note: 'starts its own secondary and top-level nodes: not with --url' });
          continue;
        }
        result = await measureSyncDrain(name, { databaseUrl: options.databaseUrl, redisUrl: nodes.redis.ok ? options.redisUrl : undefined, changes: options.drainChanges, connections: options.connections, signal });
        if (result.status === 'skipped') note(`[${name}] skipped: ${result.note}`);
      } else if (s.kind === 'pair') {
        if (!nodes.acquirePair || !s.baseline) {
          results.push({ name, config: s.config, status: 'skipped', note: `needs two nodes the bench starts itself (${s.baseline} and ${s.config} side by side): not with --url` });
          note(`[${name}] skipped: needs two nodes the bench starts itself, not --url`);
          continue;
        }
        const [baseline, node] = await nodes.acquirePair(s.baseline, s.config);
        await seedOn(baseline.url);
        result = await measurePair(s, baseline, node, { ...set, key: await nodes.adminKey() }, { connections: options.connections, duration: options.duration, warmup: options.warmup, signal, slices: options.slices, slice: options.slice });
      } else if (s.kind === 'import') {
        const node = await nodes.acquire(s.config);
        await seedOn(node.url);
        result = await measureImport(s, node, { ...set, key: await nodes.adminKey() }, options.importLines, signal);
      } else if (s.kind === 'stats') {
        const node = await nodes.acquire(s.config);
        await seedOn(node.url);
        result = await measureStats(s, node, await nodes.adminKey(), {
          enterprises: options.statsEnterprises,
          identifiersPerPrefix: options.statsIdentifiersPerPrefix,
          days: options.statsDays,
          duration: options.statsDuration,
          warmup: options.warmup,
          signal,
        });
      } else {
        const node = await nodes.acquire(s.config);
        await seedOn(node.url);
        result = await measure(s, node, { ...set, key: await nodes.adminKey() }, { connections: options.connections, duration: options.duration, warmup: options.warmup, signal, slice: options.slice });
      }
      if (result.status === 'failed') note(`[${name}] FAILED: ${result.note}`);
      results.push({ ...result, elapsedS: Math.round((Date.now() - began) / 100) / 10 });
    } catch (err) {
      if (signal.aborted) break;
      // Without seeded data no scenario means anything.
      if (!seeded) throw err;
      note(`[${name}] FAILED: ${(err as Error).message}`);
      results.push({ name, config: s.config, status: 'failed', note: (err as Error).message.split('\n')[0] });
    }
  }
  return results;
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseOptions(process.argv.slice(2), process.env);
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    options = parsed;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n(npm run bench -- --help lists the options)\n`);
    return 2;
  }

  const record: RunRecord = {
    startedAt: new Date().toISOString(),
    finishedAt: '',
    machine: machineInfo(),
    options: redactedOptions(options),
    mode: options.url ? 'url' : 'started nodes',
    profiles: [],
    results: [],
  };
  const m = record.machine;
  note(`bench: ${String(m.cpus)} CPUs, load average ${(m.loadAverage as number[]).join(' ')}, Node ${String(m.node)}; ${options.scenarios.join(', ')}; ${options.connections} connections, ${options.duration} s each, seed ${options.seed.toLocaleString('en')}`);

  const controller = new AbortController();
  let nodes: NodeSource | undefined;
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts += 1;
    if (interrupts === 1) {
      note(`${signal}: stopping the run and cleaning up (again to kill at once)`);
      controller.abort();
      abortStarts();
    } else {
      nodes?.killNow();
      killAllNodes();
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let results: ScenarioResult[] = [];
  let failure: unknown;
  try {
    nodes = options.url
      ? new UrlNode(options.url, options.key)
      : await StartedNodes.create({ databaseUrl: options.databaseUrl, redisUrl: options.redisUrl, prefix: options.prefix, profileDir: options.profileDir, key: options.key });
    if (!nodes.redis.ok) note(`${nodes.redis.problem}: scenarios that need Redis are skipped; "default" runs with the in-process cache only`);
    results = await runAll(options, nodes, controller.signal, record);
  } catch (err) {
    failure = err;
  } finally {
    if (nodes) {
      record.nodes = nodes.describe();
      await nodes.close();
      record.profiles = nodes.profiles;
    }
  }

  judge(results, options.seed, options.importLines);
  record.results = results;
  record.finishedAt = new Date().toISOString();
  if (results.length > 0) {
    process.stdout.write(`${table(results, Boolean(options.url))}\n`);
    const file = writeRecord(record, options.jsonOut);
    note(`results: ${file}`);
  }
  if (record.profiles.length > 0) note(`CPU profiles (open in Chrome DevTools > Performance, or speedscope):\n${record.profiles.map((p) => `  ${p}`).join('\n')}`);
  if (controller.signal.aborted) return 130;
  if (failure) {
    note(`bench failed: ${failure instanceof BenchError ? failure.message : ((failure as Error).stack ?? String(failure))}`);
    return 1;
  }
  return results.some((r) => r.status === 'failed' || (r.errors ?? 0) > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
