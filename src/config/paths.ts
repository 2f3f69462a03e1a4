/**
 * YAML paths as issues show them: `models[1].parameters.density`, `tokenizer.tokens["<|im_end|>"]`.
 * Keys that are not plain identifiers are written in brackets as JSON strings.
 */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (PLAIN_KEY.test(key)) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

const LAST_SEGMENT = /(?:\.?[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$/;

/** The path one level up, or undefined for the root. */
export function parentPath(path: string): string | undefined {
  if (path === '') return undefined;
  const match = LAST_SEGMENT.exec(path);
  if (!match) return '';
  return path.slice(0, match.index);
}
