import { describe, expect, it } from 'vitest';
import { createMockEngine, mockOptionsFrom } from '../../src/ui/dev/mock-engine';
import type { RunProgress } from '../../src/worker/api';

const YAML = `models:
  - model: mistralai/Mistral-7B-v0.1
  - model: HuggingFaceH4/zephyr-7b-beta
    parameters: {weight: 1, density: 0.5}
merge_method: ties
base_model: mistralai/Mistral-7B-v0.1
`;

const request = (yaml = YAML) => ({
  yaml,
  models: [
    { key: 'mistralai/Mistral-7B-v0.1', source: { kind: 'hub' as const, repo: 'mistralai/Mistral-7B-v0.1' } },
    { key: 'HuggingFaceH4/zephyr-7b-beta', source: { kind: 'hub' as const, repo: 'HuggingFaceH4/zephyr-7b-beta' } },
  ],
  outputName: 'test-merge',
});

describe('mock engine (the UI’s stand-in for the worker)', () => {
  it('searches and inspects its catalogue, and explains unknown repos', async () => {
    const engine = createMockEngine({ latencyMs: 0 });
    expect((await engine.searchModels('zephyr')).map((h) => h.id)).toEqual(['HuggingFaceH4/zephyr-7b-beta']);
    const summary = await engine.inspectModel({ kind: 'hub', repo: 'HuggingFaceH4/zephyr-7b-beta' });
    expect(summary).toMatchObject({ architecture: 'MistralForCausalLM', numLayers: 32, baseModels: ['mistralai/Mistral-7B-v0.1'] });
    await expect(engine.inspectModel({ kind: 'hub', repo: 'nobody/nothing' })).rejects.toThrow(/not found/);
  });

  it('plans, merges with progress, lists and pushes the output', async () => {
    const engine = createMockEngine({ latencyMs: 0, slowdown: 0 });
    const plan = await engine.plan(request());
    expect(plan.ok).toBe(true);
    expect(plan.layers).toHaveLength(32);
    expect(plan.outputFiles.map((f) => f.name)).toContain('README.md');
    const phases = new Set<string>();
    const result = await engine.merge(request(), (p: RunProgress) => phases.add(p.phase));
    expect([...phases]).toEqual(['preparing', 'merging', 'writing', 'done']);
    expect((await engine.listOutputs()).map((o) => o.outputName)).toEqual(['test-merge']);
    const readme = await (await engine.outputFile('test-merge', 'README.md')).text();
    expect(readme).toContain('# test-merge');
    expect(result.files.length).toBe(plan.outputFiles.length);
    await expect(engine.push({ outputName: 'test-merge', repo: 'x', private: true, accessToken: 'nope' }, () => {})).rejects.toThrow(/401/);
    expect((await engine.push({ outputName: 'test-merge', repo: 'x', private: true, accessToken: 'hf_abc' }, () => {})).url).toBe('https://huggingface.co/you/x');
  });

  it('reports config errors in the plan and fails a quota-limited merge with a QuotaExceededError', async () => {
    const engine = createMockEngine({ latencyMs: 0, slowdown: 0, quotaError: true });
    const bad = await engine.plan(request('merge_method: ties\nmodels: []\n'));
    expect(bad.ok).toBe(false);
    expect(bad.issues.length).toBeGreaterThan(0);
    await expect(engine.merge(request(), () => {})).rejects.toMatchObject({ name: 'QuotaExceededError' });
  });

  it('reads its options from the page query', () => {
    expect(mockOptionsFrom('?engine=mock&mock=slow,cpu')).toEqual({ slowdown: 3, cpuFallback: true });
    expect(mockOptionsFrom('')).toEqual({});
  });
});
