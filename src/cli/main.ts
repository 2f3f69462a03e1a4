import './v8-tuning';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { createCpuBackend, type ComputeBackend } from '../backend';
import { ConfigError, parseMergeConfig, UnsupportedConfigError } from '../config';
import { DEFAULT_BUDGET_BYTES, formatNonFiniteSummary, MergeCancelledError, NonFiniteError, runMerge, type MergeProgress, type StageTimes } from '../engine';
import { GpuDeviceLostError, GpuUnavailableError } from '../gpu';
import { chooseNodeBackend, type BackendChoice } from '../gpu/node';
import { buildPlan, PlanError, type PlanOptions } from '../plan';
import { LoraAdapterError } from '../lora';
import { escapeMessage, formatBytes, parseShardSize, SafetensorsError } from '../storage';
import { checkOutputTarget, NodeOutputFolder, NotARegularFileError, OutputTargetError } from '../storage/node-fs';
import { createNodeWorkerPool, defaultThreadCount } from '../backend/pool/node';
import { poolCacheBytes, WorkerPoolBackend } from '../backend/pool';
import { parseArgs, UsageError, type FlagSpec } from './args';
import { readConfigText } from './read-config-file';
import { formatPlan } from './format-plan';
import { evalCommand, EVAL_USAGE } from './eval-command';
import { methodsCommand, METHODS_USAGE } from './methods-command';
import { validateCommand, VALIDATE_USAGE } from './validate-command';
import { extractLoraCommand, EXTRACT_LORA_USAGE } from './extract-lora-command';
import { moeCommand, MOE_USAGE } from './moe-command';
import { ExtractCancelledError } from '../lora/extract';
import { loadLocalModels, ModelNotFoundError } from './local-models';
import { formatDuration, renderProgressLine, renderStageSplit } from './progress-bar';

/** Where the CLI writes and what it knows of its terminal (replaced in tests). */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly cwd: string;
  readonly isTTY: boolean;
  readonly columns: number;
  readonly signal?: AbortSignal;
  /** Told which backend a merge runs on (the benchmark reads its GPU memory statistics). */
  readonly onBackend?: (backend: ComputeBackend) => void;
  /** The CPU pool's worker bundle; default pool-worker.js beside the CLI's bundle (tests running sources build one). */
  readonly poolWorkerUrl?: URL;
}

const USAGE = `Usage:
  alloy merge CONFIG OUT_DIR [options]   merge the models of a mergekit YAML config into OUT_DIR
  alloy plan CONFIG [options]            print what a merge would do, without reading any weight
${MOE_USAGE}
${VALIDATE_USAGE}
${METHODS_USAGE}
${EVAL_USAGE}
${EXTRACT_LORA_USAGE}

Options:
  --backend auto|cpu|webgpu   where the arithmetic runs (default auto)
  --out-shard-size SIZE       bytes per output shard, with k/M/B suffixes (default 5B)
  --random-seed N             seed for methods that draw random numbers
  --allow-crimes              merge models of different architectures anyway, and skip (with a
                              warning) a model whose tensor shape differs from the base's
  --no-copy-tokenizer         do not copy the base model's tokenizer files
  --no-write-model-card       do not write README.md and mergekit_config.yml
  --memory SIZE               working memory per tensor chunk (default 128M)
  --strict                    refuse a result with NaN or Inf values (exit 1, nothing written)
  --threads N                 CPU backend: threads to compute on (default: all cores; 1: no workers)
  --quiet                     no progress output
  --help, --version
`;

const PLAN_FLAGS: FlagSpec[] = [
  { name: 'backend', type: 'string', choices: ['auto', 'cpu', 'webgpu'] },
  { name: 'out-shard-size', type: 'string' },
  { name: 'random-seed', type: 'string' },
  { name: 'allow-crimes', type: 'boolean' },
  { name: 'copy-tokenizer', type: 'boolean' },
  { name: 'write-model-card', type: 'boolean' },
  { name: 'memory', type: 'string' },
  { name: 'threads', type: 'string' },
  { name: 'quiet', type: 'boolean' },
];

const MERGE_FLAGS: FlagSpec[] = [...PLAN_FLAGS, { name: 'strict', type: 'boolean' }];

function defaultIo(): CliIo {
  // Ctrl-C, `kill` and a closed terminal cancel the merge cleanly: the temporary output folder is
  // removed and the exit status is 1. A second signal of the same kind kills at once.
  const controller = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => controller.abort());
  return {
    signal: controller.signal,
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    cwd: process.cwd(),
    isTTY: Boolean(process.stderr.isTTY),
    columns: process.stderr.columns ?? 80,
  };
}

/**
 * Runs the CLI; returns the exit status: 0 ok; 2 invalid config or usage (a bad path, a missing model
 * folder or config.json, an output path that cannot be used, a plan that cannot be made); 1 failed
 * or cancelled merge (including unreadable or corrupt model files).
 */
export async function runCli(argv: readonly string[], terminal: CliIo = defaultIo()): Promise<number> {
  // Every message may echo file content: no terminal escape gets through (a progress line starts
  // with the carriage return that redraws it).
  const io: CliIo = {
    ...terminal,
    stderr: (t) => terminal.stderr(t.startsWith('\r') ? `\r${escapeMessage(t.slice(1))}` : escapeMessage(t)),
  };
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stdout(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === '--version') {
      io.stdout(`alloy ${__ALLOY_VERSION__}\n`);
      return 0;
    }
    if (command === 'merge') return await mergeCommand(rest, io);
    if (command === 'plan') return await planCommand(rest, io);
    if (command === 'validate') return await validateCommand(rest, io);
    if (command === 'methods') return await methodsCommand(rest, io);
    if (command === 'eval') return await evalCommand(rest, io);
    if (command === 'extract-lora') return await extractLoraCommand(rest, io);
    if (command === 'moe') return await moeCommand(rest, io);
    throw new UsageError(`unknown command '${command}'`);
  } catch (error) {
    return report(error, io);
  }
}

declare const __ALLOY_VERSION__: string;

function report(error: unknown, io: CliIo): number {
  if (error instanceof UsageError) {
    io.stderr(`alloy: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (error instanceof UnsupportedConfigError) {
    io.stderr(`alloy: ${error.message}\n`);
    return 2;
  }
  if (error instanceof ConfigError) {
    io.stderr(`alloy: invalid config\n${error.message}\n`);
    return 2;
  }
  if (error instanceof PlanError) {
    io.stderr(`alloy: cannot plan this merge: ${error.message}\n`);
    return 2;
  }
  if (error instanceof NonFiniteError) {
    io.stderr(
      `alloy: --strict: ${error.message}\nNothing was written. ` +
        'Without --strict the merge finishes, lists every such tensor and notes them in the model card.\n',
    );
    return 1;
  }
  if (error instanceof ModelNotFoundError || error instanceof OutputTargetError) {
    io.stderr(`alloy: ${error.message}\n`);
    return 2;
  }
  if (error instanceof MergeCancelledError || error instanceof ExtractCancelledError) {
    io.stderr(`alloy: ${error.message}\n`);
    return 1;
  }
  if (error instanceof SafetensorsError || error instanceof NotARegularFileError || error instanceof GpuUnavailableError || error instanceof LoraAdapterError) {
    io.stderr(`alloy: ${error.message}\n`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.stderr(`alloy: merge failed: ${message}\n`);
  if (process.env.ALLOY_DEBUG && error instanceof Error) io.stderr(`${error.stack}\n`);
  return 1;
}

interface Prepared {
  readonly plan: ReturnType<typeof buildPlan>;
  readonly models: Awaited<ReturnType<typeof loadLocalModels>>;
}

async function prepare(configPath: string, flags: Record<string, string | boolean>, io: CliIo, outDir?: string): Promise<Prepared> {
  const text = await readConfigText(configPath, io.cwd);
  const { config, warnings } = parseMergeConfig(text, configPath);
  for (const w of warnings) io.stderr(`warning: ${configPath}: ${w.path ? w.path + ': ' : ''}${w.message}\n`);
  const models = await loadLocalModels(config, io.cwd);
  for (const w of models.warnings) io.stderr(`warning: ${w}\n`);
  const options: PlanOptions = {
    outShardSize: flags['out-shard-size'] !== undefined ? sizeFlag('out-shard-size', String(flags['out-shard-size'])) : undefined,
    allowCrimes: flags['allow-crimes'] === true,
    copyTokenizer: flags['copy-tokenizer'] !== false,
    writeModelCard: flags['write-model-card'] !== false,
    randomSeed: seedFlag(flags['random-seed']),
    outputName: outDir ? path.basename(path.resolve(io.cwd, outDir)) : undefined,
    configText: text,
  };
  const plan = buildPlan(config, models.metadata, options);
  return { plan, models };
}

function sizeFlag(name: string, value: string): number {
  try {
    return parseShardSize(value, name === 'memory' ? 'memory size' : 'shard size');
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

function seedFlag(value: string | boolean | undefined): number {
  if (value === undefined) return randomInt(0, 2 ** 31);
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new UsageError(`--random-seed must be an integer from 0 to 4294967295, not '${value}'`);
  return n;
}

async function planCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals, flags } = parseArgs(argv, PLAN_FLAGS);
  if (positionals.length !== 1) throw new UsageError('plan takes exactly one argument: CONFIG');
  const { plan, models } = await prepare(positionals[0], flags, io);
  await models.sources.closeAll();
  io.stdout(formatPlan(plan));
  return 0;
}

async function mergeCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals, flags } = parseArgs(argv, MERGE_FLAGS);
  if (positionals.length !== 2) throw new UsageError('merge takes exactly two arguments: CONFIG OUT_DIR');
  const [configPath, outDir] = positionals;
  const backendName = String(flags.backend ?? 'auto') as BackendChoice;
  const budgetBytes = flags.memory !== undefined ? sizeFlag('memory', String(flags.memory)) : undefined;
  // Before any work: an output path the merge could not end in is refused now, not after an hour.
  await checkOutputTarget(path.resolve(io.cwd, outDir));
  const threads = threadsFlag(flags.threads);
  // The CPU backend: the SIMD kernels (same bytes as the JavaScript reference, faster), on a pool
  // of `threads` workers unless --threads 1. The workers' cross-pass cache gets as much memory as
  // the chunks: --memory bounds both.
  const cpuBackend = (): Promise<ComputeBackend> =>
    threads <= 1 ? createCpuBackend() : createNodeWorkerPool({ threads, workerUrl: io.poolWorkerUrl, cacheBytes: poolCacheBytes(budgetBytes ?? DEFAULT_BUDGET_BYTES) });
  // auto: a hardware GPU if there is one, else the CPU (a software WebGPU adapter is slower).
  // Chosen while the config and the models' headers are read: a pool's workers take ~50 ms to
  // start, on other cores.
  const choosing = chooseNodeBackend(backendName, { budgetBytes: budgetBytes ?? DEFAULT_BUDGET_BYTES, cpu: cpuBackend });
  choosing.catch(() => undefined);
  const prepared = await prepare(configPath, flags, io, outDir).catch(async (error: unknown) => {
    await choosing.then((c) => c.backend.dispose()).catch(() => undefined);
    throw error;
  });
  const { plan, models } = prepared;
  for (const w of plan.warnings) io.stderr(`warning: ${w}\n`);
  const quiet = flags.quiet === true;
  const chosen = await choosing.catch(async (error: unknown) => {
    await models.sources.closeAll();
    throw error;
  });
  if (!quiet && backendName !== 'cpu') io.stderr(`${chosen.reason}\n`);
  let backend = chosen.backend;
  io.onBackend?.(backend);
  let output = await NodeOutputFolder.open(path.resolve(io.cwd, outDir)).catch(async (error: unknown) => {
    // Worker threads would keep the process alive.
    await backend.dispose().catch(() => undefined);
    await models.sources.closeAll();
    throw error;
  });
  for (const stale of output.removedStale) io.stderr(`warning: removed ${stale}, left behind by an interrupted merge\n`);
  const showBar = !quiet && io.isTTY;
  let lastLine = 0;
  const onProgress = (p: MergeProgress): void => {
    if (quiet) return;
    if (showBar) {
      const line = renderProgressLine(p, io.columns);
      io.stderr(`\r${line}${' '.repeat(Math.max(0, lastLine - line.length))}`);
      lastLine = line.length;
    } else if (p.phase === 'done') {
      io.stderr(`merged ${p.tensorsTotal} tensors\n`);
    }
  };
  try {
    const merge = () =>
      runMerge(plan, {
        backend,
        sources: models.sources,
        output,
        budgetBytes,
        signal: io.signal,
        onProgress,
        progressIntervalMs: showBar ? 100 : 60_000,
        refuseNonFinite: flags.strict === true,
      });
    let result: Awaited<ReturnType<typeof runMerge>>;
    try {
      result = await merge();
    } catch (error) {
      // A lost GPU under `auto`: start over on the CPU (the failed output was removed).
      if (backendName !== 'auto' || !((error as Error).cause instanceof GpuDeviceLostError)) throw error;
      io.stderr(`warning: ${((error as Error).cause as Error).message} Merging again on the CPU.\n`);
      await backend.dispose().catch(() => undefined);
      backend = await cpuBackend();
      io.onBackend?.(backend);
      output = await NodeOutputFolder.open(path.resolve(io.cwd, outDir));
      result = await merge();
    }
    if (showBar) io.stderr('\n');
    for (const w of result.warnings) io.stderr(`warning: ${w}\n`);
    if (result.nonFinite.length > 0) {
      const [headline, ...lines] = formatNonFiniteSummary(result.nonFinite);
      io.stderr(`warning: ${headline} (--strict refuses such results):\n${lines.map((l) => `  ${l}\n`).join('')}`);
    }
    if (!quiet) {
      const rate = result.elapsedMs > 0 ? plan.totalInputBytes / (result.elapsedMs / 1000) : 0;
      io.stderr(
        `Wrote ${output.dir}: ${plan.jobs.length} tensors, ${formatBytes(result.bytesWritten)} in ` +
          `${formatDuration(result.elapsedMs)} (${formatBytes(rate)}/s of input, ${backend.name} backend` +
          `${backend instanceof WorkerPoolBackend ? ` on ${backend.threads} threads` : ''}` +
          `${stageSplitSuffix(result.stageTimes)})\n`,
      );
    }
    return 0;
  } finally {
    await models.sources.closeAll();
    await backend.dispose();
  }
}

function threadsFlag(value: string | boolean | undefined): number {
  if (value === undefined) return defaultThreadCount();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new UsageError(`--threads must be a whole number from 1 to 1024, not '${value}'`);
  return n;
}

/** "; waiting: read 30% compute 65% write 5%" for the closing line (empty when nothing was timed). */
function stageSplitSuffix(stageTimes: StageTimes): string {
  const split = renderStageSplit(stageTimes);
  return split ? `; waiting: ${split}` : '';
}
