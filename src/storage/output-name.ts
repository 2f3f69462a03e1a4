import { untrustedText } from './untrusted-text';

/**
 * The one rule for an output's folder name, shared by the engine (which refuses the merge) and the
 * app's Output name field (which explains it while typing), so that the two never disagree.
 */

// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f<>:"|?*]/g;

/** Why `name` cannot name an output folder, or null when it can. */
export function outputNameProblem(name: string): string | null {
  if (name.trim() === '') return 'the output name is empty';
  if (name.length > 200) return 'the output name is longer than 200 characters: choose a shorter one';
  const shown = untrustedText(name, 80);
  if (/[/\\]/.test(name)) return `the output name "${shown}" contains a slash: use a plain folder name (the Hub repo is chosen when pushing)`;
  if (name.startsWith('.')) return `the output name "${shown}" starts with a dot: remove it`;
  const forbidden = [...new Set(name.match(FORBIDDEN) ?? [])];
  if (forbidden.length > 0) {
    const list = forbidden.map((c) => untrustedText(c)).join(' ');
    return `the output name "${shown}" contains characters that file names cannot hold (${list}): remove them`;
  }
  return null;
}
