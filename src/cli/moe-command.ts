import { existsSync, statSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { formatModelReference, parseMoeConfig, type ConfigDtype, type ModelReference, type MoeConfig } from '../config';
import { ForwardModelError } from '../model';
import { MoeCancelledError, MoeConfigError, runMoeMerge, type MoeLayout, type MoeProgress } from '../moe';
import { formatBytes, parseShardSize, untrustedText } from '../storage';
import { checkOutputTarget, nodeModelFolder, NodeOutputFolder } from '../storage/node-fs';
import { parseArgs, UsageError, type FlagSpec } from './args';
import { ModelNotFoundError } from './local-models';
import type { CliIo } from './main';
import { formatDuration } from './progress-bar';
import { readConfigText } from './read-config-file';

/**
 * `alloy moe CONFIG OUT_DIR`: mergekit-moe's job (docs/moe.md). Local model folders only, like
 * `alloy merge`. Exit 2 for a config these models cannot build (with its YAML path) or bad usage,
 * 1 for a failed or cancelled build; nothing is left in OUT_DIR unless it succeeded.
 */
export const MOE_USAGE = '  alloy moe CONFIG OUT_DIR [options]     build a mixture of experts from a mergekit-moe config (alloy moe --help)';

export const MOE_HELP = `Usage: alloy moe CONFIG OUT_DIR [options]

Builds a mixture-of-experts model from a mergekit-moe YAML config: the base model's attention,
norms and embeddings, each expert model's MLP as one expert, routers from the experts' prompts.

Options (as mergekit-moe's):
  --out-shard-size SIZE        bytes per output shard, with k/M/B suffixes (default 5B)
  --no-copy-tokenizer          do not copy the base model's tokenizer files
  --no-write-model-card        do not write README.md and mergekit_moe_config.yml
  --random-seed N              seed of random routers and noise_scale noise (default: a random one,
                               recorded in the model card)
  --i-understand-this-is-not-useful-without-training
                               allow every expert to be the same model
Alloy's own:
  --dtype bfloat16|float16|float32
                               output dtype, overriding the config's dtype
  --layout per-expert|fused    per-expert tensors (default; Transformers 4 and 5, llama.cpp, vLLM)
                               or Transformers 5's fused experts (Mixtral and Qwen3 MoE only)
  --memory SIZE                largest block of a tensor read at once (default 32M)
  --prompt-batch N             prompts per forward pass for gate_mode hidden (default 8)
  --quiet                      no progress output
`;

const FLAGS: FlagSpec[] = [
  { name: 'out-shard-size', type: 'string' },
  { name: 'copy-tokenizer', type: 'boolean' },
  { name: 'write-model-card', type: 'boolean' },
  { name: 'random-seed', type: 'string' },
  { name: 'i-understand-this-is-not-useful-without-training', type: 'boolean' },
  { name: 'dtype', type: 'string', choices: ['bfloat16', 'float16', 'float32'] },
  { name: 'layout', type: 'string', choices: ['per-expert', 'fused'] },
  { name: 'memory', type: 'string' },
  { name: 'prompt-batch', type: 'string' },
  { name: 'quiet', type: 'boolean' },
  { name: 'help', type: 'boolean' },
];

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export async function moeCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals, flags } = parseArgs(argv, FLAGS);
  if (flags.help === true) {
    io.stdout(MOE_HELP);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError('moe takes exactly two arguments: CONFIG OUT_DIR');
  const [configPath, outDir] = positionals;
  const outShardSize = flags['out-shard-size'] !== undefined ? sizeFlag('out-shard-size', String(flags['out-shard-size'])) : undefined;
  const blockBytes = flags.memory !== undefined ? sizeFlag('memory', String(flags.memory)) : undefined;
  const promptBatch = flags['prompt-batch'] !== undefined ? wholeFlag('prompt-batch', String(flags['prompt-batch']), 1, 4096) : undefined;
  const seed = flags['random-seed'] !== undefined ? wholeFlag('random-seed', String(flags['random-seed']), 0, 2 ** 32 - 1) : randomInt(0, 2 ** 31);
  const target = path.resolve(io.cwd, outDir);
  await checkOutputTarget(target);

  const configText = await readConfigText(configPath, io.cwd);
  const { config, warnings } = parseMoeConfig(configText, configPath);
  for (const w of warnings) io.stderr(`warning: ${configPath}: ${w.path ? w.path + ': ' : ''}${w.message}\n`);
  // Every folder is checked before anything is read.
  const dirs = localFolders(config, io.cwd);

  const quiet = flags.quiet === true;
  const output = await NodeOutputFolder.open(target);
  for (const stale of output.removedStale) io.stderr(`warning: removed ${stale}, left behind by an interrupted build\n`);
  const started = performance.now();
  let lastLine = 0;
  const onProgress = (p: MoeProgress): void => {
    if (quiet || p.phase === 'done') return;
    const line =
      p.phase === 'gates'
        ? `routers: ${p.done}/${p.total} ${config.gate_mode.startsWith('hidden') ? 'prompt batches' : 'experts'}`
        : `weights: ${p.done}/${p.total} tensors, ${formatBytes(p.bytesWritten)}`;
    if (io.isTTY) {
      io.stderr(`\r${line}${' '.repeat(Math.max(0, lastLine - line.length))}`);
      lastLine = line.length;
    }
  };
  try {
    const report = await runMoeMerge(
      config,
      { folder: (ref: ModelReference) => nodeModelFolder(dirs.get(formatModelReference(ref))!, formatModelReference(ref)) },
      output,
      {
        seed,
        layout: flags.layout as MoeLayout | undefined,
        dtype: flags.dtype as ConfigDtype | undefined,
        outShardSize,
        copyTokenizer: flags['copy-tokenizer'] !== false,
        writeModelCard: flags['write-model-card'] !== false,
        allowAllSame: flags['i-understand-this-is-not-useful-without-training'] === true,
        blockBytes,
        promptBatch,
        configText,
        outputName: path.basename(target),
        signal: io.signal,
      },
      onProgress,
    );
    if (lastLine > 0) io.stderr('\n');
    for (const w of report.warnings) io.stderr(`warning: ${w}\n`);
    if (!quiet) {
      io.stderr(
        `Wrote ${target}: ${report.architecture} (${report.layout} layout), ${report.experts} experts × ${report.layers} layers, ` +
          `${report.tensors} tensors, ${formatBytes(report.bytesWritten)} in ${formatDuration(performance.now() - started)}\n`,
      );
    }
    return 0;
  } catch (error) {
    if (lastLine > 0) io.stderr('\n');
    if (error instanceof MoeConfigError) {
      io.stderr(`alloy: ${configPath}: cannot build this mixture of experts: ${error.message}\nNothing was written.\n`);
      return 2;
    }
    if (error instanceof MoeCancelledError || error instanceof ForwardModelError) {
      io.stderr(`alloy: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** Each model folder of the config, resolved against cwd (like mergekit), checked to exist. */
function localFolders(config: MoeConfig, cwd: string): Map<string, string> {
  const dirs = new Map<string, string>();
  const refs: [ModelReference, string][] = [
    [config.base_model, 'base_model'],
    ...config.experts.map((e, i): [ModelReference, string] => [e.source_model, `experts[${i}].source_model`]),
    ...(config.shared_experts ?? []).map((e, i): [ModelReference, string] => [e.source_model, `shared_experts[${i}].source_model`]),
  ];
  for (const [ref, yamlPath] of refs) {
    const key = formatModelReference(ref);
    if (dirs.has(key)) continue;
    const dir = path.resolve(cwd, ref.path);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      const hint = HUB_ID.test(ref.path)
        ? ` It looks like a Hugging Face Hub id; the CLI reads local folders only: download it first (e.g. \`huggingface-cli download ${untrustedText(ref.path)} --local-dir ${untrustedText(ref.path)}\`).`
        : ' Check the path (relative paths are resolved against the current directory).';
      throw new ModelNotFoundError(`${yamlPath}: model ${untrustedText(key)}: folder ${untrustedText(dir)} does not exist or is not a folder.${hint}`);
    }
    dirs.set(key, dir);
  }
  return dirs;
}

function sizeFlag(name: string, value: string): number {
  try {
    return parseShardSize(value);
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

function wholeFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not '${untrustedText(value, 40)}'`);
  return n;
}
