import { describe, expect, it } from 'vitest';
import { formatMethods, methodsJson } from '../../src/cli/methods-command';
import { METHODS } from '../../src/methods';
import { runAlloy, tempDir } from './run-alloy';

describe('alloy methods', () => {
  it('prints every method with its pretty name, paper, description, use and parameters', async () => {
    const r = await runAlloy(['methods'], tempDir());
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    for (const m of METHODS) {
      expect(r.stdout).toContain(`${m.name} — ${m.prettyName}${m.paperUrl ? `  <${m.paperUrl}>` : ''}\n`);
      for (const p of m.params) expect(r.stdout).toMatch(new RegExp(`\\n      ${p.name} \\((global|per model), `));
    }
    expect(r.stdout).toContain('When to use: ');
    for (const line of r.stdout.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('describes a parameter with scope, default or required, range and meaning', () => {
    const text = formatMethods(METHODS.filter((m) => m.name === 'ties'), 100);
    expect(text).toContain('      weight (per model, number, required)\n          How much of this model goes into the result.');
    expect(text).toContain('      normalize (global, true/false, default true)\n');
    expect(text).toContain('      density (per model, number, default 1, range 0 to 1)\n');
    expect(text).toContain('    Base model: required');
  });

  it('NAME… prints only those methods; an unknown name is a usage error with a suggestion', async () => {
    const dir = tempDir();
    const r = await runAlloy(['methods', 'slerp', 'linear'], dir);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^\S+ — /gm)).toEqual(['slerp — ', 'linear — ']);
    const bad = await runAlloy(['methods', 'slrep'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown merge method 'slrep' \(did you mean 'slerp'\?\)/);
  });

  it('--json is the declarations as data (one source of truth)', async () => {
    const r = await runAlloy(['methods', '--json'], tempDir());
    expect(r.code).toBe(0);
    const methods = JSON.parse(r.stdout);
    expect(methods).toEqual(JSON.parse(JSON.stringify(methodsJson())));
    expect(methods.map((m: { name: string }) => m.name)).toEqual(METHODS.map((m) => m.name));
    const ties = methods.find((m: { name: string }) => m.name === 'ties');
    expect(ties).toMatchObject({ prettyName: 'TIES', paperUrl: 'https://arxiv.org/abs/2306.01708', baseModel: 'required' });
    expect(ties.parameters).toContainEqual(expect.objectContaining({ name: 'normalize', scope: 'global', type: 'boolean', required: false, default: true }));
    expect(ties.parameters).toContainEqual(
      expect.objectContaining({ name: 'density', scope: 'model', required: false, default: 1, min: 0, max: 1, description: expect.any(String) }),
    );
    for (const m of METHODS) {
      const json = methods.find((x: { name: string }) => x.name === m.name);
      expect(json.parameters.map((p: { name: string }) => p.name)).toEqual(m.params.map((p) => p.name));
      expect(json.description).toBe(m.description);
      expect(json.whenToUse).toBe(m.whenToUse);
    }
  });

  it('is listed in the usage', async () => {
    const r = await runAlloy(['--help'], tempDir());
    expect(r.stdout).toMatch(/alloy validate CONFIG…/);
    expect(r.stdout).toMatch(/alloy methods \[NAME…\] \[--json\]/);
  });
});
