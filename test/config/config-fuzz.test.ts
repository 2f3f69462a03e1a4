/**
 * Seeded fuzz test of the config reader: alias chains, deep nesting, huge numbers and random
 * edits of a valid config. validateConfigText must never throw; a refused config points at a
 * line and column; an accepted one is within the YAML limits. Each input is bounded (a few kB, or
 * refused by the size limit before parsing), so each case is small by construction.
 */
import { describe, expect, it } from 'vitest';
import { readYamlDocument, validateConfigText, YAML_LIMITS } from '../../src/config';
import { mulberry32 } from '../fixtures/models';

const CASES = 200;

const VALID = `slices:
  - sources:
      - model: org/base
        layer_range: [0, 4]
      - model: org/ft
        layer_range: [0, 4]
        parameters:
          weight: [0.2, 0.8]
          density: 0.5
merge_method: ties
base_model: org/base
parameters:
  normalize: true
tokenizer: {source: union, pad_to_multiple_of: 64}
dtype: bfloat16
`;

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);

const HUGE = ['1e308', '-1e308', '1e20', '100000000', '9007199254740993', '.inf', '-.inf', '.nan', '0x7fffffff', '0o777', '1_000_000', '-0', "'1e400'", '1e-400'];

/** Up to `maxLevels` anchors, each a list of up to `maxFanout` aliases of the one before. */
function aliasChain(rng: Rng, maxLevels = 10, maxFanout = 12): string {
  const levels = 1 + int(rng, maxLevels);
  const fanout = 1 + int(rng, maxFanout);
  let text = 'x0: &x0 [1, 2, 3]\n';
  for (let l = 1; l <= levels; l++) text += `x${l}: &x${l} [${Array(fanout).fill(`*x${l - 1}`).join(', ')}]\n`;
  return VALID + text;
}

function nesting(rng: Rng): string {
  const depth = pick(rng, [10, 63, 64, 65, 100, 129, 1000, 20_000]);
  const style = int(rng, 3);
  if (style === 0) return `${VALID}x: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
  if (style === 1) return `${VALID}x:\n${Array.from({ length: Math.min(depth, 400) }, (_, i) => `${' '.repeat(i + 1)}- `).join('\n')}z\n`;
  return `${VALID}x:\n  ${'- '.repeat(depth)}z\n`;
}

function hugeNumber(rng: Rng): string {
  const targets = ['[0, 4]', '0.5', '64', '[0.2, 0.8]'];
  const target = pick(rng, targets);
  const value = target.startsWith('[') ? `[0, ${pick(rng, HUGE)}]` : pick(rng, HUGE);
  return VALID.replace(target, value);
}

function randomEdit(rng: Rng): string {
  let text = VALID;
  for (let k = 1 + int(rng, 4); k > 0; k--) {
    const at = int(rng, text.length);
    const op = int(rng, 3);
    const noise = pick(rng, ['*', '&a ', '[', '{', ']', '- ', ':', '\n', '  ', '"', "'", '<<: ', '!!binary ', '\u001b', '#', '---\n', '? ', '|', '%YAML 1.1\n']);
    if (op === 0) text = text.slice(0, at) + noise + text.slice(at);
    else if (op === 1) text = text.slice(0, at) + text.slice(at + 1 + int(rng, 6));
    else text = text.slice(0, at) + noise + text.slice(at + 1);
  }
  return text;
}

/** Values once aliases are expanded, and depth (the accepted document is plain data). */
function measure(value: unknown): { nodes: number; depth: number } {
  let nodes = 0;
  let depth = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0 && nodes <= YAML_LIMITS.maxNodes * 2) {
    const [v, d] = stack.pop()!;
    nodes++;
    depth = Math.max(depth, d);
    if (Array.isArray(v)) for (const x of v) stack.push([x, d + 1]);
    else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
      for (const [k, x] of Object.entries(v)) stack.push([k, d + 1], [x, d + 1]);
    }
  }
  return { nodes, depth };
}

describe('config reader fuzz (seeded)', () => {
  it(`never throws, and refuses or accepts ${CASES} hostile configs within the limits`, () => {
    const rng = mulberry32(61206);
    // Small alias chains here (accepted large expansions cost time); the next test takes big ones.
    const kinds = [(r: Rng) => aliasChain(r, 4, 8), nesting, hugeNumber, randomEdit];
    let ok = 0;
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const text = pick(rng, kinds)(rng);
      const result = validateConfigText(text, 'fuzz.yml');
      if (result.ok) {
        const doc = readYamlDocument(text);
        expect(doc.readable, `case ${i}`).toBe(true);
        const { nodes, depth } = measure(doc.root);
        // The measure counts keys and values separately: at most twice the node limit.
        expect(nodes, `case ${i}`).toBeLessThanOrEqual(2 * YAML_LIMITS.maxNodes + 1);
        expect(depth, `case ${i}`).toBeLessThanOrEqual(2 * YAML_LIMITS.maxDepth + 2);
        ok++;
        continue;
      }
      refused++;
      for (const issue of result.issues.filter((x) => x.severity === 'error')) {
        expect(issue.message.length, `case ${i}`).toBeGreaterThan(0);
        expect(issue.line, `case ${i}: ${issue.message}`).toBeGreaterThanOrEqual(1);
        expect(issue.column, `case ${i}: ${issue.message}`).toBeGreaterThanOrEqual(1);
        expect(issue.message, `case ${i}`).not.toMatch(/internal error/);
      }
    }
    expect(ok).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(CASES / 4);
  });

  it('refuses every alias chain that expands past the value limit, at the anchor where it does', () => {
    const rng = mulberry32(7);
    for (let i = 0; i < 50; i++) {
      const text = aliasChain(rng);
      const levels = (text.match(/^x\d+:/gm) ?? []).length - 1;
      const fanout = (text.split('\n').find((l) => l.startsWith('x1:'))?.match(/\*x0/g) ?? []).length;
      // x0 holds 4 values; x_l holds 1 + fanout × size(x_{l-1}).
      const sizes = [4];
      for (let l = 1; l <= levels; l++) sizes.push(1 + fanout * sizes[l - 1]);
      const first = sizes.findIndex((s) => s > YAML_LIMITS.maxNodes);
      const issues = validateConfigText(text).issues.filter((x) => /more than 100000 values/.test(x.message));
      if (first < 0) expect(issues, `case ${i}`).toEqual([]);
      else expect(issues.map((x) => x.line), `case ${i}`).toEqual([VALID.split('\n').length + first]);
    }
  });
});
