import { describe, expect, it } from 'vitest';
import { parseMergeConfig, validateMethod } from '../../src/config';
import { findMethod, MERGEKIT_METHOD_NAMES, METHODS, type MergeMethod } from '../../src/methods';

/**
 * The validator reads every rule of a merge method from its declaration in src/methods (parameters,
 * base policy, `sliceInputs`, `densityCheck`, `laxBoolean`). These tests check that the
 * declarations carry what the validator needs and agree with each other.
 */

// A typical valid config per method.
const TYPICAL: Record<string, string> = {
  linear: 'models:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 2}}\n',
  slerp: 'models:\n  - model: a\n  - model: b\nbase_model: a\nparameters: {t: 0.5}\n',
  nuslerp: 'models:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\n',
  multislerp: 'models:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\nbase_model: c\n',
  karcher: 'models:\n  - model: a\n  - model: b\n',
  passthrough: 'slices:\n  - sources: [{model: a, layer_range: [0, 4]}]\n  - sources: [{model: b, layer_range: [2, 6]}]\n',
  model_stock: 'models:\n  - model: a\n  - model: b\nbase_model: c\n',
  arcee_fusion: 'models:\n  - model: a\n  - model: b\nbase_model: a\n',
  nearswap: 'models:\n  - model: a\nbase_model: b\nparameters: {t: 0.001}\n',
  sce: 'models:\n  - model: a\n  - model: b\nbase_model: c\n',
  ram: 'models:\n  - model: a\n  - model: b\nbase_model: c\n',
  ramplus_tl: 'models:\n  - model: a\nbase_model: c\nparameters: {r: 0.1}\n',
};
const TASK_ARITHMETIC =
  'models:\n  - {model: a, parameters: {weight: 0.5, density: 0.5}}\n  - {model: b, parameters: {weight: 0.5, density: 0.5}}\nbase_model: c\n';

function typicalConfig(method: MergeMethod) {
  return parseMergeConfig(`merge_method: ${method.name}\n${TYPICAL[method.name] ?? TASK_ARITHMETIC}`).config;
}

/** The most distinct models one slice may list, from `sliceInputs` (undefined: no limit). */
function mostModelsPerSlice(method: MergeMethod): number | undefined {
  const { models, others } = method.sliceInputs;
  if (models?.max !== undefined) return models.max;
  if (others?.max !== undefined) return others.max + (method.base === 'member' ? 0 : 1);
  return undefined;
}

const byName = METHODS.map((m) => [m.name, m] as const);

describe('method declarations as the validator reads them', () => {
  it('every method mergekit registers is declared, so every mergekit config gets its method checks', () => {
    expect(MERGEKIT_METHOD_NAMES.filter((name) => !findMethod(name))).toEqual([]);
  });

  it.each(byName)('%s: a typical config passes its rules', (_, method) => {
    const issues = validateMethod(typicalConfig(method), method);
    expect(issues.filter((i) => i.severity === 'error')).toEqual([]);
  });

  it.each(byName)('%s: the models a slice may list fit the inputs a tensor may have', (_, method) => {
    expect(mostModelsPerSlice(method)).toBe(method.maxInputs);
    if (method.base === 'member') expect(method.sliceInputs.baseInSources).toBe(false);
    if (method.sliceInputs.loneSource === 'base') expect(method.base).toBe('required');
  });

  it.each(byName)('%s: value checks name parameters it declares', (_, method) => {
    const names = method.params.map((p) => p.name);
    for (const p of method.params) if (p.laxBoolean) expect(p.type).toBe('boolean');
    if (method.densityCheck) expect(names).toContain('density');
    if (method.densityCheck === 'dellaWindow') expect(names).toContain('epsilon');
  });

  it('mergekit tests only these flags for truth; its other flags are pydantic bools', () => {
    const lax = METHODS.flatMap((m) => m.params.filter((p) => p.laxBoolean).map((p) => `${m.name}.${p.name}`));
    const family = ['task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear'];
    expect(lax.sort()).toEqual(['multislerp.normalize_weights', 'sce.int8_mask', ...family.map((m) => `${m}.rescale`)].sort());
  });

  it('the density checks mergekit makes while merging belong to the pruning methods that make them', () => {
    const checks = Object.fromEntries(METHODS.filter((m) => m.densityCheck).map((m) => [m.name, m.densityCheck]));
    expect(checks).toEqual({ ties: 'positive', della: 'dellaWindow', della_linear: 'dellaWindow' });
  });

  it.each(byName)('%s: a flag set to 0.5 is an error, or a warning where mergekit only tests it for truth', (_, method) => {
    const config = typicalConfig(method);
    for (const flag of method.params.filter((p) => p.type === 'boolean')) {
      const issues = validateMethod({ ...config, parameters: { ...config.parameters, [flag.name]: 0.5 } }, method);
      const found = issues.filter((i) => i.path === `parameters.${flag.name}`);
      expect(found.map((i) => i.severity)).toEqual([flag.laxBoolean ? 'warning' : 'error']);
    }
  });
});
