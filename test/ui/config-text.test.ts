import { describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { checkConfigText, editConfigText, hasYamlComment, ReadOnlyConfigError } from '../../src/ui/lib/config-text';

const TIES = `models:
  - model: org/base
  - model: org/tuned-a
    parameters:
      weight: 0.5
      density: 0.5
  - model: org/tuned-b
    parameters:
      weight: 0.5
      density: [1, 0.5]
merge_method: ties
base_model: org/base
parameters:
  normalize: true
dtype: bfloat16
`;

describe('checkConfigText', () => {
  it('accepts a valid config and offers it for editing', () => {
    const check = checkConfigText(TIES);
    expect(check.errorCount).toBe(0);
    expect(check.valid?.merge_method).toBe('ties');
    expect(check.editable).toEqual(check.valid);
  });

  it('shows no issues for an empty text (a fresh session)', () => {
    const check = checkConfigText('  \n');
    expect(check.empty).toBe(true);
    expect(check.issues).toEqual([]);
    expect(check.editable).toEqual({ merge_method: '' });
  });

  it('reports semantic errors with line numbers and still lets the form edit the config', () => {
    const text = `models:\n  - model: org/a\n  - model: org/b\nmerge_method: linear\n`;
    const check = checkConfigText(text);
    expect(check.valid).toBeNull();
    expect(check.errorCount).toBeGreaterThan(0);
    expect(check.issues.every((i) => typeof i.line === 'number')).toBe(true);
    expect(check.issues.some((i) => /weight/.test(i.message))).toBe(true);
    expect(check.editable?.models?.map((m) => m.model.path)).toEqual(['org/a', 'org/b']);
  });

  it('makes the form read-only on YAML syntax errors, pointing at the line', () => {
    const text = `models:\n  - model: org/a\n    parameters: {weight: 1\nmerge_method: linear\n`;
    const check = checkConfigText(text);
    expect(check.editable).toBeNull();
    expect(check.issues[0].line).toBeGreaterThanOrEqual(3);
    expect(() => editConfigText(text, () => {})).toThrow(ReadOnlyConfigError);
  });

  it('reads YAML 1.1 booleans and numbers in strings leniently', () => {
    const text = `models:\n  - model: org/a\n    parameters:\n      weight: "0.5"\nmerge_method: linear\nparameters:\n  normalize: no\nfoo: 1\n`;
    const check = checkConfigText(text);
    expect(check.editable?.parameters?.normalize).toBe(0);
    expect(check.editable?.models?.[0].parameters?.weight).toBe(0.5);
  });
});

describe('editConfigText', () => {
  it('round-trips: an edit produces YAML that parses to the edited config', () => {
    const out = editConfigText(TIES, (c) => {
      c.models![1].parameters!.weight = 0.7;
    });
    const parsed = parseMergeConfig(out).config;
    expect(parsed.models![1].parameters!.weight).toBe(0.7);
    expect(parsed.models![2].parameters!.density).toEqual([1, 0.5]);
    expect(parsed.parameters!.normalize).toBe(1);
    expect(out).toContain('normalize: true');
    expect(out).toContain('density: [1, 0.5]');
  });

  it('leaves an unset method out of the text', () => {
    expect(editConfigText('', (c) => (c.dtype = 'bfloat16'))).toBe('dtype: bfloat16\n');
  });
});

describe('hasYamlComment', () => {
  it('finds comments but not # inside quoted strings or names', () => {
    expect(hasYamlComment('a: 1 # note')).toBe(true);
    expect(hasYamlComment('# header\na: 1')).toBe(true);
    expect(hasYamlComment('chat_template: "{# jinja #}"')).toBe(false);
    expect(hasYamlComment("model: 'org/a#b'")).toBe(false);
    expect(hasYamlComment('model: org/a#b')).toBe(false);
  });
});
