import { describe, expect, it } from 'vitest';
import { METHODS } from '../../src/methods';
import { checkCompatibility, lineage, recommendMethods, type ModelFacts } from '../../src/ui/lib/recommend';

const mistral = (key: string, extra: Partial<ModelFacts> = {}): ModelFacts => ({
  key,
  architecture: 'MistralForCausalLM',
  numLayers: 32,
  hiddenSize: 4096,
  vocabSize: 32000,
  dtype: 'BF16',
  ...extra,
});

describe('checkCompatibility', () => {
  it('is silent for one model or matching models', () => {
    expect(checkCompatibility([mistral('a/a')])).toEqual([]);
    expect(checkCompatibility([mistral('a/a'), mistral('a/b')])).toEqual([]);
  });

  it('flags architectures and hidden sizes as errors, layers and vocabularies as warnings', () => {
    const issues = checkCompatibility([
      mistral('a/base'),
      mistral('q/qwen', { architecture: 'Qwen2ForCausalLM', hiddenSize: 3584 }),
      mistral('a/deep', { numLayers: 48 }),
      mistral('a/vocab', { vocabSize: 32002 }),
    ]);
    expect(issues.map((i) => [i.severity, i.models])).toEqual([
      ['error', ['q/qwen']],
      ['error', ['q/qwen']],
      ['warning', ['a/deep']],
      ['warning', ['a/vocab']],
    ]);
    expect(issues[2].message).toMatch(/slices/);
    expect(issues.map((i) => i.kind)).toEqual(['architecture', 'hiddenSize', 'numLayers', 'vocabSize']);
  });

  it('compares against the chosen base', () => {
    const issues = checkCompatibility([mistral('a/a', { numLayers: 40 }), mistral('a/base')], 'a/base');
    expect(issues[0].models).toEqual(['a/a']);
  });
});

describe('lineage', () => {
  it('finds a chosen model that the others name as base (ignoring revisions and case)', () => {
    const models = [mistral('x/tuned', { baseModels: ['Org/Base'] }), mistral('org/base@main'), mistral('y/tuned', { baseModels: ['org/base'] })];
    expect(lineage(models)).toEqual({ baseAmongModels: 'org/base@main' });
  });
  it('finds a common base that is not chosen', () => {
    expect(lineage([mistral('x/a', { baseModels: ['org/base'] }), mistral('x/b', { baseModels: ['org/base'] })])).toEqual({
      commonBaseMissing: 'org/base',
    });
  });
});

describe('recommendMethods', () => {
  const names = (models: ModelFacts[]) => recommendMethods(models, METHODS).recommended.map((r) => r.method);

  it('different widths or architectures → nothing to recommend, and which of the two it is', () => {
    const wide = recommendMethods([mistral('a/a'), mistral('a/wide', { hiddenSize: 5120 })], METHODS);
    expect(wide.situation).toBe('Models of different sizes');
    expect(wide.recommended).toEqual([]);
    const other = recommendMethods([mistral('a/a'), mistral('q/q', { architecture: 'Qwen2ForCausalLM' })], METHODS);
    expect(other.situation).toBe('Different architectures');
    expect(other.recommended).toEqual([]);
    // Both differ: the width is named first, as before
    expect(recommendMethods([mistral('a/a'), mistral('q/q', { architecture: 'Qwen2ForCausalLM', hiddenSize: 3584 })], METHODS).situation).toBe(
      'Models of different sizes',
    );
  });

  it('two fine-tunes of one base → SLERP first and a hint to add the base', () => {
    const g = recommendMethods([mistral('x/a', { baseModels: ['org/base'] }), mistral('x/b', { baseModels: ['org/base'] })], METHODS);
    expect(g.recommended[0].method).toBe('slerp');
    expect(g.notes.join(' ')).toMatch(/Add it as a model/);
  });

  it('fine-tunes with their base → TIES first, base suggested', () => {
    const g = recommendMethods(
      [mistral('org/base'), mistral('x/a', { baseModels: ['org/base'] }), mistral('x/b', { baseModels: ['org/base'] })],
      METHODS,
    );
    expect(g.recommended[0].method).toBe('ties');
    expect(g.suggestedBase).toBe('org/base');
  });

  it('only recommends implemented methods', () => {
    const implemented = new Set(METHODS.map((m) => m.name));
    const all = [
      names([mistral('a/a'), mistral('a/b'), mistral('a/c')]),
      names([mistral('a/a'), mistral('a/b')]),
      names([mistral('a/a')]),
    ].flat();
    expect(all.every((m) => implemented.has(m))).toBe(true);
    expect(names([mistral('a/a'), mistral('a/b'), mistral('a/c')])).toContain('linear');
  });

  it('different depths → passthrough slices; different widths → nothing', () => {
    expect(names([mistral('a/a'), mistral('a/b', { numLayers: 40 })])[0]).toBe('passthrough');
    expect(names([mistral('a/a'), mistral('a/b', { hiddenSize: 5120 })])).toEqual([]);
  });
});

describe('differingFields', () => {
  it('lists, per model, what differs from the reference', async () => {
    const { differingFields } = await import('../../src/ui/lib/recommend');
    const out = differingFields([mistral('a/a'), mistral('a/b', { numLayers: 40, vocabSize: 1 }), mistral('a/c')]);
    expect([...out.entries()].map(([k, v]) => [k, [...v]])).toEqual([['a/b', ['numLayers', 'vocabSize']]]);
  });
});
