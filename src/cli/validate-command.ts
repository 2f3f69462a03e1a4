import path from 'node:path';
import { validateConfigText, type ConfigIssue, type ConfigValidation } from '../config';
import { parseArgs, UsageError, type FlagSpec } from './args';
import { readConfigFile } from './read-config-file';
import type { CliIo } from './main';

/**
 * `alloy validate CONFIG [CONFIG…]`: checks each file the way mergekit (or mergekit-moe) would read
 * it, with no model files and no network. Errors and warnings go to stderr as
 * `file:line:col: error: yaml.path: message`, one verdict per file to stdout. Exit 0 when every file
 * is valid (warnings allowed), 2 when any is invalid or unreadable.
 */

export const VALIDATE_USAGE =
  '  alloy validate CONFIG… [--json]        check configs as mergekit (or mergekit-moe) would, offline; --quiet: errors only';

const FLAGS: FlagSpec[] = [
  { name: 'json', type: 'boolean' },
  { name: 'quiet', type: 'boolean' },
];

export async function validateCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals, flags } = parseArgs(argv, FLAGS);
  if (positionals.length === 0) throw new UsageError('validate takes one or more config files: alloy validate CONFIG [CONFIG…]');
  const results: ConfigValidation[] = [];
  for (const file of positionals) results.push(await validateFile(file, io.cwd));

  if (flags.json === true) {
    io.stdout(`${JSON.stringify(results, null, 2)}\n`);
  } else {
    for (const result of results) {
      const file = result.file ?? '';
      const shown = flags.quiet === true ? result.issues.filter((i) => i.severity === 'error') : result.issues;
      for (const issue of shown) io.stderr(`${formatIssueLine(issue, file)}\n`);
      if (flags.quiet !== true) io.stdout(`${verdict(result)}\n`);
    }
  }
  return results.every((r) => r.ok) ? 0 : 2;
}

async function validateFile(file: string, cwd: string): Promise<ConfigValidation> {
  let text: string;
  try {
    const read = await readConfigFile(path.resolve(cwd, file));
    if ('issue' in read) return { ok: false, kind: 'merge', file, issues: [read.issue] };
    text = read.text;
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    return { ok: false, kind: 'merge', file, issues: [{ path: '', message: `cannot read the file: ${reason}`, severity: 'error' }] };
  }
  return validateConfigText(text, file);
}

/** `file:line:col: error: path: message`, leaving out the parts that are unknown. */
export function formatIssueLine(issue: ConfigIssue, file: string): string {
  const where = [file, issue.line, issue.line !== undefined ? issue.column : undefined].filter((p) => p !== undefined && p !== '').join(':');
  return [where, issue.severity, issue.path, issue.message].filter((part) => part !== '').join(': ');
}

function verdict(result: ConfigValidation): string {
  const count = (severity: ConfigIssue['severity']) => result.issues.filter((i) => i.severity === severity).length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const warnings = count('warning');
  if (!result.ok) {
    return `${result.file}: invalid (${plural(count('error'), 'error')}${warnings > 0 ? `, ${plural(warnings, 'warning')}` : ''})`;
  }
  const what = result.kind === 'moe' ? 'valid mergekit-moe config (build it with alloy moe)' : 'valid mergekit config';
  return `${result.file}: ${what}${warnings > 0 ? `, ${plural(warnings, 'warning')}` : ''}`;
}
