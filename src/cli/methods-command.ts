import { closest } from '../config';
import { METHODS, type MergeMethod, type ParamDecl } from '../methods';
import { parseArgs, UsageError, type FlagSpec } from './args';
import type { CliIo } from './main';

/**
 * `alloy methods [NAME…] [--json]`: every merge method Alloy implements, from the method
 * declarations themselves (the same ones the validator, the planner and the app use).
 */

export const METHODS_USAGE = '  alloy methods [NAME…] [--json]         describe the merge methods and their parameters';

const FLAGS: FlagSpec[] = [{ name: 'json', type: 'boolean' }];

export async function methodsCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals, flags } = parseArgs(argv, FLAGS);
  const methods = positionals.length === 0 ? METHODS : positionals.map(lookup);
  if (flags.json === true) io.stdout(`${JSON.stringify(methodsJson(methods), null, 2)}\n`);
  else io.stdout(formatMethods(methods, io.isTTY ? Math.min(Math.max(io.columns, 60), 120) : 100));
  return 0;
}

function lookup(name: string): MergeMethod {
  const method = METHODS.find((m) => m.name === name);
  if (method) return method;
  const suggestion = closest(name, METHODS.map((m) => m.name));
  throw new UsageError(
    `unknown merge method '${name}'${suggestion ? ` (did you mean '${suggestion}'?)` : ''}; methods: ${METHODS.map((m) => m.name).join(', ')}`,
  );
}

/** One parameter as `alloy methods --json` prints it. */
export interface ParameterInfo {
  name: string;
  scope: 'global' | 'model';
  type: ParamDecl['type'];
  required: boolean;
  default?: number | boolean;
  min?: number;
  max?: number;
  description: string;
}

/** One method as `alloy methods --json` prints it. */
export interface MethodInfo {
  name: string;
  prettyName: string;
  paperUrl?: string;
  description: string;
  whenToUse: string;
  baseModel: MergeMethod['base'];
  minInputs?: number;
  maxInputs?: number;
  parameters: ParameterInfo[];
}

export function methodsJson(methods: readonly MergeMethod[] = METHODS): MethodInfo[] {
  return methods.map((m) => {
    const info: MethodInfo = {
      name: m.name,
      prettyName: m.prettyName,
      description: m.description,
      whenToUse: m.whenToUse,
      baseModel: m.base,
      parameters: m.params.map(parameterInfo),
    };
    if (m.paperUrl !== undefined) info.paperUrl = m.paperUrl;
    if (m.minInputs !== undefined) info.minInputs = m.minInputs;
    if (m.maxInputs !== undefined) info.maxInputs = m.maxInputs;
    return info;
  });
}

function parameterInfo(p: ParamDecl): ParameterInfo {
  const info: ParameterInfo = { name: p.name, scope: p.scope, type: p.type, required: p.required, description: p.description };
  if (p.default !== undefined) info.default = p.type === 'boolean' ? p.default !== 0 : p.default;
  if (p.min !== undefined) info.min = p.min;
  if (p.max !== undefined) info.max = p.max;
  return info;
}

const BASE_TEXT: Readonly<Record<MergeMethod['base'], string>> = {
  required: 'required (base_model: the model the others are measured against)',
  optional: 'optional (when given, the merge works on the differences from it)',
  member: 'not special (a base_model is merged like any other model)',
};

/** The text `alloy methods` prints: every method with its parameters, wrapped to `width` columns. */
export function formatMethods(methods: readonly MergeMethod[] = METHODS, width = 100): string {
  const out: string[] = [];
  for (const m of methods) {
    out.push(`${m.name} — ${m.prettyName}${m.paperUrl ? `  <${m.paperUrl}>` : ''}`);
    out.push(...wrap(m.description, width, '    '));
    out.push(...wrap(`When to use: ${m.whenToUse}`, width, '    '));
    out.push(...wrap(`Base model: ${BASE_TEXT[m.base]}`, width, '    '));
    if (m.params.length === 0) out.push('    Parameters: none');
    else {
      out.push('    Parameters:');
      for (const p of m.params) {
        out.push(`      ${p.name} (${parameterFacts(p)})`);
        out.push(...wrap(p.description, width, '          '));
      }
    }
    out.push('');
  }
  return `${out.join('\n')}\n`.replace(/\n\n$/, '\n');
}

function parameterFacts(p: ParamDecl): string {
  const facts = [p.scope === 'model' ? 'per model' : 'global', p.type === 'boolean' ? 'true/false' : p.type === 'integer' ? 'whole number' : 'number'];
  if (p.required) facts.push('required');
  else if (p.default !== undefined) facts.push(`default ${p.type === 'boolean' ? String(p.default !== 0) : formatNumber(p.default)}`);
  else facts.push('optional, no default');
  if (p.min !== undefined && p.max !== undefined) facts.push(`range ${formatNumber(p.min)} to ${formatNumber(p.max)}`);
  else if (p.min !== undefined) facts.push(`at least ${formatNumber(p.min)}`);
  else if (p.max !== undefined) facts.push(`at most ${formatNumber(p.max)}`);
  return facts.join(', ');
}

function formatNumber(x: number): string {
  return Math.abs(x) !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6) ? x.toExponential() : String(x);
}

/** Greedy word wrap with an indent on every line. */
function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}
