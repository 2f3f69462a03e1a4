import { describe, expect, it } from 'vitest';
import { MERGEKIT_METHOD_TABLE, methodRules, type MethodDeclaration } from '../../src/config';
import { methodIssues } from '../../src/config/validate-method';
import { parseMergeConfig } from '../../src/config';
import { findMethod, MERGEKIT_METHOD_NAMES, METHODS } from '../../src/methods';

/** The parts of a declaration that validation depends on (not the wording). */
function essentials(d: MethodDeclaration) {
  return {
    name: d.name,
    prettyName: d.prettyName,
    paperUrl: d.paperUrl,
    base: d.base,
    params: [...d.params]
      .map((p) => ({ name: p.name, scope: p.scope, type: p.type, required: p.required, default: p.default, min: p.min, max: p.max }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

describe('the stand-in table of mergekit methods (src/config/method-table.ts)', () => {
  it('has one row per method mergekit 0.1.4 registers', () => {
    expect(MERGEKIT_METHOD_TABLE.map((r) => r.declaration.name)).toEqual([...MERGEKIT_METHOD_NAMES]);
  });

  it.each(METHODS.map((m) => [m.name, m] as const))('%s: the table row agrees with the real declaration', (name, method) => {
    const row = MERGEKIT_METHOD_TABLE.find((r) => r.declaration.name === name);
    if (!row) return; // an Alloy-only method: validated from its declaration alone
    expect(essentials(row.declaration)).toEqual(essentials(method));
  });

  it('the validator uses the real declaration when a method is implemented, the table otherwise', () => {
    for (const name of MERGEKIT_METHOD_NAMES) {
      const rules = methodRules(name)!;
      const method = findMethod(name);
      expect(rules.implemented).toBe(method !== undefined);
      expect(rules.declaration).toBe(method ?? MERGEKIT_METHOD_TABLE.find((r) => r.declaration.name === name)!.declaration);
    }
    expect(methodRules('frobnicate')).toBeUndefined();
  });

  // A typical valid config per method, checked with the table's rules alone (as before a method exists).
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
  const GTA = 'models:\n  - {model: a, parameters: {weight: 0.5, density: 0.5}}\n  - {model: b, parameters: {weight: 0.5, density: 0.5}}\nbase_model: c\n';

  it.each(MERGEKIT_METHOD_TABLE.map((r) => [r.declaration.name, r] as const))('%s: a typical config passes the table rules', (name, row) => {
    const yaml = `merge_method: ${name}\n${TYPICAL[name] ?? GTA}`;
    const { config } = parseMergeConfig(yaml);
    const issues = methodIssues(config, { ...row, implemented: false });
    expect(issues.filter((i) => i.severity === 'error')).toEqual([]);
  });
});
