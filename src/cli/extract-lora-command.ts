import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { extractLora, planExtraction, type ExtractOptions } from '../lora/extract';
import { formatBytes, loadModelTensors, parseShardSize } from '../storage';
import { NodeByteSource, nodeModelFolder, NodeOutputFolder } from '../storage/node-fs';
import type { ByteSource } from '../storage/types';
import { parseArgs, UsageError, type FlagSpec } from './args';
import type { CliIo } from './main';
import { formatDuration } from './progress-bar';
import { ModelNotFoundError } from './local-models';

/**
 * `alloy extract-lora`: mergekit-extract-lora's job and options (docs/lora.md §2). Writes a PEFT
 * adapter approximating fine-tune − base by a truncated (randomized) SVD per module, and prints
 * each module's relative Frobenius error.
 */
export const EXTRACT_LORA_USAGE =
  '  alloy extract-lora --model FT --base-model BASE --out-path OUT [--max-rank 128]   extract a LoRA adapter (FT − BASE)';

export const EXTRACT_LORA_HELP = `Usage: alloy extract-lora --model FINE_TUNED --base-model BASE --out-path OUT [options]

Options (as mergekit-extract-lora's):
  --max-rank N                    maximum rank of each module's LoRA (default 128)
  --distribute-scale / --no-distribute-scale
                                  split the singular values between A and B as √σ each (default on)
  --embed-lora / --no-embed-lora  extract embeddings and lm_head as LoRAs instead of saving them
                                  whole in modules_to_save (default off)
  --save-module NAME              save this module whole (repeatable)
  --exclude-regex RE, -e RE       leave out modules whose name matches RE (repeatable)
  --include-regex RE, -i RE       extract only modules whose name matches RE (repeatable)
  --sv-epsilon X                  drop singular values ≤ X (default 0)
  --skip-undecomposable           leave out modules that are not matrices (norms) instead of saving them whole
Alloy's own:
  --random-seed N                 seed of the randomized SVD (default 0: the same adapter every run)
  --oversample N                  extra sketch directions beyond the rank (default 10)
  --power-iterations N            power iterations of the randomized SVD (default 2)
  --memory SIZE                   working memory per tensor (default 256M)
  --quiet                         no per-module table
`;

const FLAGS: FlagSpec[] = [
  { name: 'model', type: 'string' },
  { name: 'base-model', type: 'string' },
  { name: 'out-path', type: 'string' },
  { name: 'max-rank', type: 'string' },
  { name: 'distribute-scale', type: 'boolean' },
  { name: 'embed-lora', type: 'boolean' },
  { name: 'sv-epsilon', type: 'string' },
  { name: 'skip-undecomposable', type: 'boolean' },
  { name: 'random-seed', type: 'string' },
  { name: 'oversample', type: 'string' },
  { name: 'power-iterations', type: 'string' },
  { name: 'memory', type: 'string' },
  { name: 'quiet', type: 'boolean' },
  { name: 'help', type: 'boolean' },
];

const REPEATED: Record<string, string> = { '--save-module': 'save', '--exclude-regex': 'exclude', '-e': 'exclude', '--include-regex': 'include', '-i': 'include' };

/** Takes the repeatable options out of argv (parseArgs keeps one value per flag). */
function takeRepeated(argv: readonly string[]): { rest: string[]; values: Record<string, string[]> } {
  const rest: string[] = [];
  const values: Record<string, string[]> = { save: [], exclude: [], include: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const key = REPEATED[name];
    if (!key) {
      rest.push(arg);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`option ${name} needs a value`);
    values[key].push(value);
  }
  return { rest, values };
}

function integerFlag(flags: Record<string, string | boolean>, name: string, fallback: number, min: number): number {
  const value = flags[name];
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, not '${String(value)}'`);
  return n;
}

export async function extractLoraCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { rest, values } = takeRepeated(argv);
  const { positionals, flags } = parseArgs(rest, FLAGS);
  if (flags.help === true) {
    io.stdout(EXTRACT_LORA_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`extract-lora takes options only (unexpected '${positionals[0]}')`);
  for (const name of ['model', 'base-model', 'out-path']) {
    if (typeof flags[name] !== 'string') throw new UsageError(`extract-lora needs --${name}`);
  }
  const svEpsilon = flags['sv-epsilon'] === undefined ? 0 : Number(flags['sv-epsilon']);
  if (!Number.isFinite(svEpsilon) || svEpsilon < 0) throw new UsageError(`--sv-epsilon must be a number ≥ 0, not '${String(flags['sv-epsilon'])}'`);
  let memoryBytes = 256 * 1024 * 1024;
  if (flags.memory !== undefined) {
    try {
      memoryBytes = parseShardSize(String(flags.memory));
    } catch (error) {
      throw new UsageError(`--memory: ${(error as Error).message}`);
    }
  }
  const options: ExtractOptions = {
    maxRank: integerFlag(flags, 'max-rank', 128, 1),
    distributeScale: flags['distribute-scale'] !== false,
    embedLora: flags['embed-lora'] === true,
    modulesToSave: values.save,
    excludeRegexes: values.exclude,
    includeRegexes: values.include,
    svEpsilon,
    skipUndecomposable: flags['skip-undecomposable'] === true,
  };
  const seed = flags['random-seed'] === undefined ? 0 : integerFlag(flags, 'random-seed', 0, 0);
  const ftName = String(flags.model);
  const baseName = String(flags['base-model']);
  const folderOf = (name: string, what: string): string => {
    const dir = path.resolve(io.cwd, name);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new ModelNotFoundError(`${what} ${name}: folder ${dir} does not exist (the CLI reads local model folders).`);
    }
    return dir;
  };
  const ftDir = folderOf(ftName, 'Fine-tuned model');
  const baseDir = folderOf(baseName, 'Base model');
  const [ft, base] = await Promise.all([loadModelTensors(nodeModelFolder(ftDir, ftName)), loadModelTensors(nodeModelFolder(baseDir, baseName))]);
  const plan = planExtraction(base, ft, options);
  for (const w of plan.warnings) io.stderr(`warning: ${w}\n`);
  const opened: ByteSource[] = [];
  const opener = (dir: string): ((file: string) => Promise<ByteSource>) => {
    const cache = new Map<string, Promise<ByteSource>>();
    return (file) => {
      let s = cache.get(file);
      if (!s) {
        s = NodeByteSource.open(path.join(dir, file)).then((source) => (opened.push(source), source));
        cache.set(file, s);
      }
      return s;
    };
  };
  const output = await NodeOutputFolder.open(path.resolve(io.cwd, String(flags['out-path'])));
  const started = Date.now();
  const quiet = flags.quiet === true;
  try {
    if (!quiet) io.stderr(`${'module'.padEnd(48)} ${'shape'.padEnd(14)} rank  rel. error\n`);
    const report = await extractLora(plan, { base: opener(baseDir), ft: opener(ftDir) }, output, {
      ...options,
      seed,
      oversample: integerFlag(flags, 'oversample', 10, 0),
      powerIterations: integerFlag(flags, 'power-iterations', 2, 0),
      memoryBytes,
      baseModelName: baseName,
      fineTuneName: ftName,
      invocation: `alloy extract-lora ${argv.join(' ')}`,
      signal: io.signal,
      onModule: (m) => {
        if (!quiet) io.stderr(`${m.module.padEnd(48)} ${m.shape.join('×').padEnd(14)} ${String(m.rank).padStart(4)}  ${m.relativeError.toExponential(3)}\n`);
      },
    });
    const elapsed = Date.now() - started;
    if (!quiet) {
      const worst = report.modules.reduce((w, m) => Math.max(w, m.relativeError), 0);
      io.stderr(
        `Wrote ${output.dir}: ${report.modules.length} LoRA modules, ${report.saved} tensors saved whole, ${formatBytes(report.bytesWritten)} ` +
          `in ${formatDuration(elapsed)} (${formatBytes(elapsed > 0 ? report.bytesRead / (elapsed / 1000) : 0)}/s read); worst relative error ${worst.toExponential(3)}\n`,
      );
    }
    return 0;
  } finally {
    await Promise.allSettled(opened.map((s) => s.close?.()));
  }
}
