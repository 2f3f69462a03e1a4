import { describe, expect, it } from 'vitest';
import { parseMergeConfig, UnsupportedConfigError, validateConfigText, type ConfigIssue } from '../../src/config';
import { readCorpus, type CorpusFile, type ExpectedIssue } from './corpus';

const VALID = readCorpus('valid');
const INVALID = readCorpus('invalid');

function matches(issue: ConfigIssue, e: ExpectedIssue): boolean {
  return (
    issue.severity === e.severity &&
    issue.path === e.path &&
    issue.line === e.line &&
    issue.column === e.column &&
    issue.message.includes(e.fragment)
  );
}

function show(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `  ${i.severity} ${i.path || '(root)'} @ ${i.line}:${i.column} | ${i.message}`).join('\n');
}

/** Every expected issue is reported once; `exhaustive` severities have nothing unexpected. */
function expectIssues(c: CorpusFile, issues: readonly ConfigIssue[], exhaustive: ReadonlyArray<'error' | 'warning'>): void {
  const unmatched = [...issues];
  for (const e of c.expected) {
    const i = unmatched.findIndex((issue) => matches(issue, e));
    expect(i, `${c.name}: expected ${e.severity} at ${e.path || '(root)'} ${e.line}:${e.column} containing "${e.fragment}"; got:\n${show(issues)}`).toBeGreaterThanOrEqual(0);
    unmatched.splice(i, 1);
  }
  const unexpected = unmatched.filter((issue) => exhaustive.includes(issue.severity));
  expect(unexpected, `${c.name}: unexpected issues:\n${show(unexpected)}`).toEqual([]);
}

describe('validateConfigText over the corpus of valid configs', () => {
  it('has files of every style', () => expect(VALID.length).toBeGreaterThanOrEqual(25));

  it.each(VALID.map((c) => [c.name, c] as const))('%s is valid', (_name, c) => {
    const result = validateConfigText(c.text, c.name);
    expect(result.ok, show(result.issues)).toBe(true);
    expect(result.kind).toBe(c.kind);
    expect(result.file).toBe(c.name);
    expect(c.expected.every((e) => e.severity === 'warning')).toBe(true);
    expectIssues(c, result.issues, ['error', 'warning']);
  });
});

describe('validateConfigText over the corpus of invalid configs', () => {
  it('has files of every kind of mistake', () => expect(INVALID.length).toBeGreaterThanOrEqual(35));

  it.each(INVALID.map((c) => [c.name, c] as const))('%s is rejected with pointed errors', (_name, c) => {
    expect(c.expected.some((e) => e.severity === 'error'), `${c.name} lists no expect-error`).toBe(true);
    const result = validateConfigText(c.text, c.name);
    expect(result.ok).toBe(false);
    expect(result.kind).toBe(c.kind);
    expectIssues(c, result.issues, ['error']);
    for (const issue of result.issues) {
      expect(issue.line, `${c.name}: ${issue.message}`).toBeGreaterThanOrEqual(1);
      expect(issue.column).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('line ends and encodings', () => {
  const toCrlf = (text: string) => text.replace(/\r?\n/g, '\r\n');
  const toLf = (text: string) => text.replace(/\r\n/g, '\n');

  it.each([...VALID, ...INVALID].map((c) => [c.name, c] as const))('%s gives the same issues with LF, CRLF and a BOM', (_name, c) => {
    const lf = validateConfigText(toLf(c.text));
    expect(validateConfigText(toCrlf(c.text))).toEqual(lf);
    expect(validateConfigText(`\uFEFF${c.text}`)).toEqual(validateConfigText(c.text));
  });
});

describe('validateConfigText', () => {
  it('never throws, whatever the input', () => {
    const inputs = [
      '',
      '\u0000\u0001',
      '- a\n- b\n',
      '42',
      'merge_method: [1, 2]\nmodels: {a: b}\n',
      'models:\n  - model: {model: {path: [1]}}\nmerge_method: linear\n',
      'experts: 3\n',
      'experts:\n  - 1\n  - {source_model: [x]}\nbase_model: {}\nshared_experts: {a: 1}\nexperts_per_token: x\n',
      'slices:\n  - sources: [{model: a, layer_range: [0, 1e400]}]\nmerge_method: della\nparameters: {density: [{filter: 1}], epsilon: [[]]}\n',
      'a: &x [*x]\n',
      '{'.repeat(200),
      'models: !!python/object:os.system {}\nmerge_method: linear\n',
    ];
    for (const text of inputs) {
      const result = validateConfigText(text);
      expect(result.ok, text).toBe(false);
      expect(['merge', 'moe']).toContain(result.kind);
      expect(result.issues.some((i) => i.severity === 'error')).toBe(true);
    }
  });

  it('tells merge configs from mergekit-moe configs, also when the YAML is broken', () => {
    expect(validateConfigText('experts: [}\n').kind).toBe('moe');
    expect(validateConfigText('experts:\n  - source_model: a\nmerge_method: linear\n').kind).toBe('merge');
    const merge = validateConfigText('experts:\n  - source_model: a\nmerge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n');
    expect(merge.ok).toBe(true);
    expect(merge.issues[0]).toMatchObject({ path: 'experts', severity: 'warning', line: 1, column: 1 });
    expect(merge.issues[0].message).toMatch(/belongs to mergekit-moe configs/);
  });

  it('accepts model+lora, warning that mergekit needs --lora-merge-cache; merging accepts it too', () => {
    const lora = 'models:\n  - model: org/a+org/lora\n    parameters: {weight: 1}\nmerge_method: linear\n';
    const result = validateConfigText(lora);
    expect(result.ok).toBe(true);
    expect(result.issues).toEqual([expect.objectContaining({ path: 'models[0].model', severity: 'warning', message: expect.stringMatching(/--lora-merge-cache/) })]);
    expect(parseMergeConfig(lora).config.models?.[0].model).toEqual({ path: 'org/a', lora: { path: 'org/lora' } });
  });

  it('DELLA: the window is checked at every layer of a slice, and only where 0 < density < 1', () => {
    const della = (density: string, epsilon: string, layers = 4) => `slices:
  - sources:
      - {model: base, layer_range: [0, ${layers}]}
      - {model: a, layer_range: [0, ${layers}], parameters: {weight: 1, density: ${density}, epsilon: ${epsilon}}}
merge_method: della
base_model: base
`;
    // [1, 0.5] over 2 layers: densities 1 and 0.5 only — fine; over 3 layers 0.75 + 0.3 ≥ 1.
    expect(validateConfigText(della('[1, 0.5]', '0.3', 2)).ok).toBe(true);
    const three = validateConfigText(della('[1, 0.5]', '0.3', 3));
    expect(three.issues.map((i) => [i.path, i.line, i.column])).toEqual([['slices[0].sources[1].parameters.density', 4, 74]]);
    expect(three.issues[0].message).toMatch(/density 0.75 .* t = 0.5\) with epsilon 0.3 gives density \+ epsilon = 1.05 ≥ 1/);
    // density 0 (keeps nothing) and ≥ 1 (keeps everything) skip the check, as in mergekit
    expect(validateConfigText(della('0', '0.15')).ok).toBe(true);
    expect(validateConfigText(della('1.2', '0.9')).ok).toBe(true);
    // an epsilon gradient against a scalar density
    expect(validateConfigText(della('0.5', '[0.1, 0.6]')).issues[0].path).toBe('slices[0].sources[1].parameters.epsilon');
  });

  it('DELLA: filtered densities are paired with the epsilons that can apply to the same tensors', () => {
    const yaml = (eps: string) => `models:
  - model: a
    parameters:
      weight: 1
      density: [{filter: mlp, value: 0.2}, {value: 0.9}]
      epsilon: ${eps}
merge_method: della_linear
base_model: base
`;
    expect(validateConfigText(yaml('[{filter: mlp, value: 0.1}, {value: 0.05}]')).ok).toBe(true);
    const bad = validateConfigText(yaml('[{filter: self_attn, value: 0.01}, {value: 0.15}]'));
    expect(bad.issues.filter((i) => i.severity === 'error').map((i) => i.message)).toEqual([
      expect.stringMatching(/density 0.2 with epsilon 0.15 gives density − epsilon = 0.05|density 0.9 with epsilon 0.15 gives density \+ epsilon = 1.05/),
    ]);
  });

  it('warns about flags mergekit only tests for truth, and errors where it checks them', () => {
    const ta = (flags: string) => `models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: task_arithmetic\nbase_model: base\nparameters: {${flags}}\n`;
    const lax = validateConfigText(ta('rescale: 2'));
    expect(lax.ok).toBe(true);
    expect(lax.issues[0].message).toMatch(/rescale is an on\/off flag: 2 counts as true/);
    expect(validateConfigText(ta('normalize: 2')).issues[0]).toMatchObject({ path: 'parameters.normalize', severity: 'error', line: 6, column: 25 });
  });

  it('negative weights with normalize on warn (mergekit issue #213)', () => {
    const yaml = 'models:\n  - model: a\n    parameters: {weight: -0.5}\n  - model: b\n    parameters: {weight: 1}\nmerge_method: linear\n';
    const result = validateConfigText(yaml);
    expect(result.ok).toBe(true);
    expect(result.issues).toEqual([expect.objectContaining({ path: 'models[0].parameters.weight', severity: 'warning', line: 3, column: 26 })]);
    expect(validateConfigText(`${yaml}parameters: {normalize: false}\n`).issues).toEqual([]);
  });

  it('legacy spellings mergekit 0.1 no longer reads warn', () => {
    const yaml = 'models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: linear\ntokenizer_source: model:org/tok\n';
    const result = validateConfigText(yaml);
    expect(result.ok).toBe(true);
    expect(result.issues[0]).toMatchObject({ path: 'tokenizer_source', line: 5, column: 19 });
    expect(result.issues[0].message).toMatch(/mergekit ≤ 0.0.4.*write org\/tok/);
  });

  it('lax values pydantic converts: quoted integers in layer_range, empty dtype and chat_template', () => {
    const yaml = `slices:
  - sources:
      - model: a
        layer_range: ["0", "8"]
merge_method: passthrough
dtype: ""
chat_template: ""
`;
    const result = validateConfigText(yaml);
    expect(result.ok).toBe(true);
    expect(result.issues.map((i) => [i.path, i.severity])).toEqual([
      ['slices[0].sources[0].layer_range[0]', 'warning'],
      ['slices[0].sources[0].layer_range[1]', 'warning'],
      ['dtype', 'warning'],
      ['chat_template', 'warning'],
    ]);
  });
});

describe('layouts, as mergekit counts them', () => {
  it('an empty models/slices list next to a filled one is ignored with a warning (mergekit tests them for truth)', () => {
    const yaml = 'models: []\nslices:\n  - sources: [{model: a, layer_range: [0, 2]}]\nmerge_method: passthrough\n';
    const result = validateConfigText(yaml);
    expect(result.ok).toBe(true);
    expect(result.issues).toEqual([expect.objectContaining({ path: 'models', severity: 'warning', line: 1, column: 1 })]);
    expect(validateConfigText('models: []\nmerge_method: linear\n').issues).toEqual([expect.objectContaining({ path: 'models', severity: 'error', message: expect.stringMatching(/empty/) })]);
  });
});
