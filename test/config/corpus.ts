import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The config corpus under test/config/corpus/{valid,invalid}: each file says at its top, in comment
 * lines, what validating it must report:
 *
 *   # kind: moe                                        (default: merge)
 *   # expect-error: PATH @ LINE:COL | message fragment
 *   # expect-warning: PATH @ LINE:COL | message fragment
 *
 * PATH is the YAML path (`slices[1].sources[0].layer_range`), `(root)` for the document itself.
 * Errors are listed exhaustively; in valid files, so are warnings.
 */
export interface ExpectedIssue {
  severity: 'error' | 'warning';
  path: string;
  line: number;
  column: number;
  fragment: string;
}

export interface CorpusFile {
  name: string;
  file: string;
  text: string;
  valid: boolean;
  kind: 'merge' | 'moe';
  expected: ExpectedIssue[];
}

export const CORPUS_DIR = new URL('./corpus/', import.meta.url).pathname;

const EXPECT = /^# expect-(error|warning): (\S+) @ (\d+):(\d+) \| (.+)$/;

export function readCorpus(which: 'valid' | 'invalid'): CorpusFile[] {
  const dir = join(CORPUS_DIR, which);
  return readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => {
      const file = join(dir, name);
      const text = readFileSync(file, 'utf8');
      const expected: ExpectedIssue[] = [];
      let kind: 'merge' | 'moe' = 'merge';
      for (const line of text.split(/\r?\n/)) {
        if (!line.startsWith('#')) break;
        if (/^# kind: moe\s*$/.test(line)) kind = 'moe';
        const m = EXPECT.exec(line.trimEnd());
        if (m) {
          expected.push({
            severity: m[1] as 'error' | 'warning',
            path: m[2] === '(root)' ? '' : m[2],
            line: Number(m[3]),
            column: Number(m[4]),
            fragment: m[5].trim(),
          });
        } else if (line.startsWith('# expect')) {
          throw new Error(`${name}: malformed expectation line: ${line}`);
        }
      }
      return { name, file, text, valid: which === 'valid', kind, expected };
    });
}
