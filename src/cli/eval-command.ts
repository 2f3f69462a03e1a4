import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_EVAL_TOKENS,
  EVAL_TEXT,
  EVAL_TEXT_SOURCE,
  ForwardModel,
  ForwardModelError,
  explainFlag,
  flagWorseModels,
  formatPerplexity,
  loadTextTokenizer,
  scoreModels,
  ShortTextError,
  type EvalModel,
  type EvalScore,
  type EvalScores,
  type EvalText,
} from '../model';
import { CpuBackend, type ComputeBackend } from '../backend';
import { GpuUnavailableError } from '../gpu';
import { chooseNodeBackend, type BackendChoice } from '../gpu/node';
import { SafetensorsError } from '../storage';
import { nodeModelFolder } from '../storage/node-fs';
import { parseArgs, UsageError, type FlagSpec } from './args';
import type { CliIo } from './main';

/**
 * `alloy eval MODEL… [--text FILE] [--max-tokens N] [--json] [--backend B]`: the perplexity of a
 * bundled text (and of FILE) for each local model, side by side, with the streamed forward pass
 * on the chosen backend's matrix ops (docs/model.md §7: the CPU reference or WebGPU); a
 * model far worse than the others is flagged with what to try. Exit 0 when every model was
 * scored (flags included), 1 when a model cannot be read or run, 2 for bad usage or a bad text file.
 */

export const EVAL_USAGE =
  '  alloy eval MODEL… [--text FILE]        perplexity of a bundled text (and FILE) per model, side by side;\n' +
  '                                         flags a model far worse than the others (--max-tokens N, default 512; --json;\n' +
  '                                         --backend auto|cpu|webgpu as for merge)';

const FLAGS: FlagSpec[] = [
  { name: 'text', type: 'string' },
  { name: 'max-tokens', type: 'string' },
  { name: 'json', type: 'boolean' },
  { name: 'quiet', type: 'boolean' },
  { name: 'backend', type: 'string', choices: ['auto', 'cpu', 'webgpu'] },
];

export { DEFAULT_EVAL_TOKENS } from '../model';

export async function evalCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals, flags } = parseArgs(argv, FLAGS);
  if (positionals.length === 0) throw new UsageError('eval takes one or more model folders: alloy eval MODEL… [--text FILE]');
  const maxTokens = maxTokensFlag(flags['max-tokens']);
  const texts: EvalText[] = [{ label: 'bundled text', text: EVAL_TEXT }];
  if (flags.text !== undefined) {
    const user = await readUserText(String(flags.text), io);
    if (typeof user === 'number') return user;
    texts.push(user);
  }

  const models: EvalModel[] = [];
  let backend: ComputeBackend | null = null;
  try {
    const choice = String(flags.backend ?? 'auto') as BackendChoice;
    const chosen = await chooseNodeBackend(choice, { cpu: async () => new CpuBackend() });
    backend = chosen.backend;
    if (choice !== 'cpu' && flags.quiet !== true && flags.json !== true) io.stderr(`${chosen.reason}\n`);
    const matrix = backend.matrix;
    // Everything is opened (configs, headers, tokenizers) before any arithmetic: a bad model fails fast.
    for (const arg of positionals) {
      const opened = await openModel(arg, io, matrix);
      if (typeof opened === 'number') return opened;
      models.push(opened);
    }
    let evaluated: EvalScores;
    try {
      evaluated = await scoreModels(models, texts, {
        maxTokens,
        signal: io.signal,
        onScoring: (model, text, tokens) => {
          if (flags.quiet !== true && flags.json !== true) io.stderr(`scoring ${model} on ${text} (${tokens} tokens)…\n`);
        },
      });
    } catch (error) {
      if (!(error instanceof ShortTextError)) throw error;
      io.stderr(`alloy: ${error.message}\n`);
      return 2;
    }
    const { scores, flags: flagged, comparable } = evaluated;
    if (flags.json === true) {
      io.stdout(
        `${JSON.stringify(
          {
            maxTokens,
            texts: texts.map((t, c) => ({
              label: t.label,
              models: models.map((m, r) => ({ model: m.name, perplexity: scores[r][c].perplexity, tokens: scores[r][c].tokens })),
              flags: flagged[c],
            })),
          },
          null,
          2,
        )}\n`,
      );
    } else {
      io.stdout(formatTable(models.map((m) => m.name), texts, scores, flagged.map((f) => new Set(f.map((x) => x.name)))));
      if (models.length > 1 && comparable.some((ok) => !ok)) {
        io.stdout('note: the models tokenise the text differently; perplexities of different tokenizers are not compared.\n');
      }
      flagged.forEach((list, c) => {
        for (const flag of list) io.stdout(`\nflag (${texts[c].label}): ${explainFlag(flag)}\n`);
      });
    }
    return 0;
  } catch (error) {
    if (error instanceof ForwardModelError || error instanceof SafetensorsError || error instanceof GpuUnavailableError) {
      io.stderr(`alloy: ${error.message}\n`);
      return 1;
    }
    if (io.signal?.aborted) {
      io.stderr('alloy: eval cancelled\n');
      return 1;
    }
    if (error instanceof UsageError) throw error;
    io.stderr(`alloy: eval failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await Promise.allSettled(models.map((m) => m.model.close()));
    await backend?.dispose().catch(() => undefined);
  }
}

function maxTokensFlag(value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_EVAL_TOKENS;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 2 || n > 1_000_000) throw new UsageError(`--max-tokens must be an integer from 2 to 1000000, not '${String(value).slice(0, 40)}'`);
  return n;
}

async function readUserText(file: string, io: CliIo): Promise<EvalText | number> {
  const full = path.resolve(io.cwd, file);
  let text: string;
  try {
    text = await readFile(full, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (error as Error).message;
    io.stderr(`alloy: cannot read the text file ${full}: ${reason}\n`);
    return 2;
  }
  if (text.trim() === '') {
    io.stderr(`alloy: the text file ${full} is empty: give a file with a few paragraphs of text\n`);
    return 2;
  }
  if (text.includes('\u0000')) {
    io.stderr(`alloy: the text file ${full} is not text (it contains NUL bytes): give a plain UTF-8 text file\n`);
    return 2;
  }
  return { label: path.basename(file), text };
}

async function openModel(arg: string, io: CliIo, matrix: ComputeBackend['matrix']): Promise<EvalModel | number> {
  const dir = path.resolve(io.cwd, arg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    io.stderr(`alloy: Model ${arg}: ${existsSync(dir) ? `${dir} is not a folder` : `folder ${dir} does not exist`}. alloy eval reads local model folders: check the path.\n`);
    return 1;
  }
  const folder = nodeModelFolder(dir, arg);
  const tokenizer = await loadTextTokenizer(folder);
  const model = await ForwardModel.open(folder, { matrix });
  return { name: arg, model, tokenizer };
}

function formatTable(names: readonly string[], texts: readonly EvalText[], scores: readonly (readonly EvalScore[])[], flagged: readonly Set<string>[]): string {
  const header = ['model', ...texts.map((t) => t.label)];
  const rows = names.map((name, r) => [
    name,
    ...texts.map((_, c) => `${formatPerplexity(scores[r][c].perplexity)} (${scores[r][c].tokens} tokens)${flagged[c].has(name) ? ' !' : ''}`),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: readonly string[]) => `${cells.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()}\n`;
  return `Perplexity, lower is better (bundled text: ${EVAL_TEXT_SOURCE})\n${line(header)}${rows.map(line).join('')}`;
}
