import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RunProgress, PushProgress } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { createCpuBackend, type ComputeBackend } from '../../src/backend';
import { METHODS } from '../../src/methods';
import { recommendMethods } from '../../src/ui/lib/recommend';
import { writeDemoModels } from '../../scripts/generate-demo-models';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FAKE_USER, FakeHub, WRITE_TOKEN } from '../fakehub/server';
import { memoryOpfs } from '../helpers/memory-opfs';
import { serveStatic, type StaticServer } from '../e2e/static-server';

const BLOCK = 32 * 1024;
let hub: FakeHub;
let models: HubModels;
let demoDir: string;
let demoServer: StaticServer;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
  demoDir = tempDir('alloy-demo-');
  await writeDemoModels(join(demoDir, 'demo-models'));
  demoServer = await serveStatic(demoDir);
});
afterAll(async () => {
  await hub.close();
  await demoServer.close();
  rmSync(models.root, { recursive: true, force: true });
  rmSync(demoDir, { recursive: true, force: true });
});
beforeEach(() => {
  hub.resetLog();
  hub.faults = {};
});

function service(root = memoryOpfs().root): EngineService {
  const engine = new EngineService({
    storageRoot: async () => root,
    demoBaseUrl: `${demoServer.url}/demo-models/`,
    defaults: { hubUrl: hub.url, download: { blockBytes: BLOCK, retries: 1, retryBaseDelayMs: 5 } },
  });
  return engine;
}

const request = (yaml: string, outputName: string) => ({ yaml, models: [], outputName, backend: 'cpu' as const, randomSeed: 1 });

/** A Linear merge of the demo math model with `second`, half each. */
const demoLinearYaml = (second: string): string =>
  ['models:', '  - model: alloy-demo-math', '    parameters: {weight: 0.5}', `  - model: ${second}`, '    parameters: {weight: 0.5}', 'merge_method: linear', 'dtype: bfloat16'].join('\n');

async function outputBytes(engine: EngineService, name: string, file: string): Promise<Buffer> {
  return Buffer.from(await (await engine.outputFile(name, file)).arrayBuffer());
}

describe('EngineService (the worker’s API, in Node)', () => {
  it('inspects a Hub model from its metadata only', async () => {
    const engine = service();
    const summary = await engine.inspectModel({ kind: 'hub', repo: models.ids.a });
    expect(summary).toMatchObject({
      key: models.ids.a,
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      numLayers: 3,
      hiddenSize: 64,
      vocabSize: 256,
      dtype: 'BF16',
      tiedEmbeddings: false,
      hasTokenizer: true,
    });
    const params = models.a.names.reduce((s, n) => s + models.a.shapes.get(n)!.reduce((a, b) => a * b, 1), 0);
    expect(summary.parameterCount).toBe(params);
    expect(summary.weightBytes).toBe(readFileSync(join(models.a.dir, 'model.safetensors')).byteLength);
    expect(hub.requests.filter((r) => r.server === 'cdn').reduce((s, r) => s + r.bytesSent, 0)).toBeLessThan(16 * 1024);
  });

  it('inspects local files (a picked folder) and demo models', async () => {
    const engine = service();
    const files = readdirSync(models.b.dir).map(
      (name) => Object.assign(new File([readFileSync(join(models.b.dir, name))], name), { webkitRelativePath: `ft-b/${name}` }) as File,
    );
    const local = await engine.inspectModel({ kind: 'local', name: 'my-ft-b', files });
    expect(local).toMatchObject({ key: 'my-ft-b', numLayers: 3, dtype: 'BF16' });
    const demos = await engine.listDemoModels();
    expect(demos.map((d) => d.name)).toEqual(['alloy-demo-base', 'alloy-demo-math', 'alloy-demo-code']);
    expect(await engine.inspectModel({ kind: 'demo', name: 'alloy-demo-math' })).toMatchObject({ key: 'alloy-demo-math', numLayers: 4, dtype: 'BF16' });
    // The demo fine-tunes' model cards name their base, so the method guide suggests TIES against it.
    const summaries = await Promise.all(demos.map((d) => engine.inspectModel({ kind: 'demo', name: d.name })));
    expect(summaries.map((s) => s.baseModels)).toEqual([undefined, ['alloy-demo-base'], ['alloy-demo-base']]);
    const guidance = recommendMethods(summaries, METHODS);
    expect(guidance.suggestedBase).toBe('alloy-demo-base');
    expect(guidance.situation).toBe('2 fine-tunes of alloy-demo-base, with the base');
    expect(guidance.recommended.map((r) => r.method).slice(0, 3)).toEqual(['ties', 'dare_ties', 'task_arithmetic']);
    await expect(engine.inspectModel({ kind: 'demo', name: 'nope' })).rejects.toThrow(/there is no demo model "nope"/);
    await expect(engine.inspectModel({ kind: 'hub', repo: 'alloy-test/missing' })).rejects.toThrow(
      'Model alloy-test/missing: no model alloy-test/missing on the Hub (404) — check the name, or sign in for private/gated models',
    );
  });

  it('plans: sizes, download bytes, output files, memory, the layer map; problems are listed, not thrown', async () => {
    const engine = service();
    const summary = await engine.plan(request(TIES_YAML(models.ids), 'tiny-ties'));
    expect(summary.errors).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(summary.tensorCount).toBe(models.base.names.length);
    const weights = [models.base, models.a, models.b].reduce((s, m) => s + readFileSync(join(m.dir, 'model.safetensors')).byteLength, 0);
    expect(summary.downloadBytes).toBe(weights);
    expect(summary.outputFiles.map((f) => f.name)).toEqual([
      'README.md', 'config.json', 'generation_config.json', 'mergekit_config.yml', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json',
    ]);
    expect(summary.gpuMemoryBytes).toBeGreaterThan(0);
    expect(summary.layers).toEqual([0, 1, 2].map((l) => ({
      outputLayer: l,
      sources: [models.ids.a, models.ids.b, models.ids.base].map((model) => ({ model, layer: l })),
    })));

    const broken = await engine.plan(request('merge_method: ties\nmodels: 3\n', 'x'));
    expect(broken.ok).toBe(false);
    expect(broken.issues.some((i) => i.severity === 'error')).toBe(true);
    const missing = await engine.plan(request(TIES_YAML({ ...models.ids, b: 'alloy-test/missing' }), 'x'));
    expect(missing.ok).toBe(false);
    expect(missing.errors).toEqual(['Model alloy-test/missing: no model alloy-test/missing on the Hub (404) — check the name, or sign in for private/gated models']);
    const local = await engine.plan(request(TIES_YAML({ ...models.ids, b: './not-bound' }), 'x'));
    expect(local.errors[0]).toMatch(/Model \.\/not-bound of the YAML is not among the chosen models/);
    // `models/…` cannot be a Hub repo (a page of the Hub): a local folder, never asked of the Hub.
    const folder = await engine.plan(request(TIES_YAML({ ...models.ids, b: 'models/ft_a' }), 'x'));
    expect(folder.errors).toEqual([
      'Model models/ft_a of the YAML is not among the chosen models and is not a Hub id (namespace/name), so it names a local folder' +
        ': choose that folder with "Choose folder…" on its row in the Models step, or fix its name in the YAML',
    ]);
  });

  it('merges fake-hub models with TIES into OPFS, byte for byte what the CLI writes for the same YAML', async () => {
    const opfs = memoryOpfs();
    const engine = service(opfs.root);
    const progress: RunProgress[] = [];
    const result = await engine.merge(request(TIES_YAML(models.ids), 'tiny-ties'), (p) => progress.push(p));
    expect(result.outputName).toBe('tiny-ties');
    expect(result.warnings.some((w) => /CPU/.test(w))).toBe(false);

    writeConfig(models.root, 'ties.yml', TIES_YAML(models.ids));
    const cli = await runAlloy(['merge', 'ties.yml', 'tiny-ties', '--backend', 'cpu', '--random-seed', '1'], models.root);
    expect(cli.stderr).not.toMatch(/failed/);
    expect(cli.code).toBe(0);
    const cliDir = join(models.root, 'tiny-ties');
    expect(result.files.map((f) => f.name).sort()).toEqual(readdirSync(cliDir).sort());
    for (const file of result.files) {
      const ours = await outputBytes(engine, 'tiny-ties', file.name);
      expect(ours.byteLength).toBe(file.size);
      // The card differs in one way: Hub models are listed as base_model with links to the Hub.
      if (file.name === 'README.md') expect(ours.toString()).toContain(`base_model:\n- ${models.ids.a}\n- ${models.ids.b}\n- ${models.ids.base}\n`);
      else expect(ours.equals(readFileSync(join(cliDir, file.name))), file.name).toBe(true);
    }

    // Progress: preparing → downloading (all three shards) → merging → done.
    const phases = [...new Set(progress.map((p) => p.phase))];
    expect(phases).toEqual(['preparing', 'downloading', 'merging', 'writing', 'done']);
    const last = progress.at(-1)!;
    expect(last.downloads.map((d) => [d.model, d.state]).sort()).toEqual(Object.values(models.ids).map((m) => [m, 'done']).sort());
    expect(last.tensorsDone).toBe(last.tensorsTotal);
    expect(last.backend).toBe('cpu');
    // No backend is reported before the engine chose one (after the downloads).
    const early = progress.filter((p) => p.phase === 'preparing' || p.phase === 'downloading');
    expect(early.length).toBeGreaterThan(1);
    expect(early.map((p) => p.backend)).toEqual(early.map(() => undefined));
    expect(progress.filter((p) => p.phase === 'merging').every((p) => p.backend === 'cpu')).toBe(true);

    // Now cached: nothing to download, the output name is taken.
    const again = await engine.plan(request(TIES_YAML(models.ids), 'tiny-ties'));
    expect(again.downloadBytes).toBe(0);
    expect(again.errors).toEqual(['an output named "tiny-ties" already exists: delete it first, or choose another name']);
    await expect(engine.merge(request(TIES_YAML(models.ids), 'tiny-ties'), () => {})).rejects.toThrow(/already exists/);

    expect((await engine.listOutputs()).map((o) => o.outputName)).toEqual(['tiny-ties']);
    const cache = await engine.listCache();
    expect(cache.map((c) => [c.repo, c.file, c.complete])).toEqual(Object.values(models.ids).sort().map((r) => [r, 'model.safetensors', true]));
    await engine.deleteCached(models.ids.a);
    expect((await engine.listCache()).length).toBe(2);
    await engine.deleteOutput('tiny-ties');
    expect(await engine.listOutputs()).toEqual([]);
  });

  it('merges the demo models offline (no hub requests)', async () => {
    const engine = service();
    const result = await engine.merge(request(demoLinearYaml('alloy-demo-code'), 'demo-linear'), () => {});
    expect(result.files.map((f) => f.name)).toContain('model.safetensors');
    expect(hub.requests.length).toBe(0);
  });

  it('starts the CPU pool as a merge begins, before planning reads anything, and disposes of it however the merge ends', async () => {
    const events: string[] = [];
    const pool = (fail?: Error) => async (threads: number) => {
      events.push(`pool ${threads}`);
      if (fail) throw fail;
      const backend = await createCpuBackend();
      const dispose = backend.dispose.bind(backend);
      return Object.assign(backend, { dispose: async () => (events.push('disposed'), dispose()) });
    };
    const engine = (cpuPool: (threads: number) => Promise<ComputeBackend>) =>
      new EngineService({
        storageRoot: async () => memoryOpfs().root,
        demoBaseUrl: `${demoServer.url}/demo-models/`,
        fetch: async (input, init) => (events.push('fetch'), fetch(input, init)),
        cpuPool,
        defaultThreads: () => 2,
      });
    const shown: string[] = [];
    const record = (p: RunProgress) => shown.push(`${p.phase} ${p.backend ?? '-'} ${p.threads ?? '-'}`);

    const merged = await engine(pool()).merge({ ...request(demoLinearYaml('alloy-demo-code'), 'pooled'), backend: 'auto' }, record);
    expect(merged.files.map((f) => f.name)).toContain('model.safetensors');
    // The page still sees the backend only once the inputs are found.
    expect(shown[0]).toBe('preparing - -');
    expect(shown.at(-1)).toBe('done cpu 2');
    // Before, the pool started only once every input was found (after the fetches).
    expect(events[0]).toBe('pool 2');
    expect(events.filter((e) => e === 'disposed')).toHaveLength(1);
    expect(events.at(-1)).toBe('disposed');

    // A merge that fails in planning disposes of the pool it started.
    events.length = 0;
    const unplanned = engine(pool()).merge(request(demoLinearYaml('alloy-demo-nope'), 'unplanned'), () => {});
    await expect(unplanned).rejects.toThrow(/alloy-demo-nope/);
    expect(events.filter((e) => e === 'disposed')).toHaveLength(1);

    // A pool that cannot start fails the merge with its own error, and nothing is committed.
    const broken = engine(pool(new Error('CPU worker 1 of 2 stopped')));
    await expect(broken.merge(request(demoLinearYaml('alloy-demo-code'), 'broken'), () => {})).rejects.toThrow(/CPU worker 1 of 2 stopped/);
    expect(await broken.listOutputs()).toEqual([]);
  });

  it('cancels a download: nothing is written, downloaded blocks are kept for the next try', async () => {
    const opfs = memoryOpfs();
    const engine = service(opfs.root);
    hub.faults = { bytesPerSecond: 200 * 1024 };
    let cancelled = false;
    const error = await engine
      .merge(request(TIES_YAML(models.ids), 'cancelled'), (p) => {
        if (!cancelled && p.downloads.some((d) => d.bytesDone > 4 * BLOCK)) {
          cancelled = true;
          void engine.cancel();
        }
      })
      .catch((e: unknown) => e);
    expect((error as Error).message).toBe('The merge was cancelled; nothing was written. Downloaded parts are kept in the cache: merging again resumes where it stopped.');
    expect(await engine.listOutputs()).toEqual([]);
    const partial = await engine.listCache();
    expect(partial.some((c) => !c.complete && (c.bytesDone ?? 0) > 0)).toBe(true);
    // No temporary output folder is left behind.
    const outputs = await opfs.root.getDirectoryHandle('alloy-outputs');
    const names: string[] = [];
    for await (const name of (outputs as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
    expect(names).toEqual([]);
  });

  it('pushes an output to the Hub: creates the repo, uploads every file, reports progress', async () => {
    const engine = service();
    await engine.merge(request(TIES_YAML(models.ids), 'to-push'), () => {});
    expect(await engine.checkToken(WRITE_TOKEN)).toMatchObject({ name: FAKE_USER, canWrite: true });
    await expect(engine.checkToken('hf_bad')).rejects.toThrow(`the Hub rejected this token (401): create a token with write access at ${hub.url}/settings/tokens`);
    const progress: PushProgress[] = [];
    const { url } = await engine.push({ outputName: 'to-push', repo: 'pushed-merge', private: true, accessToken: WRITE_TOKEN }, (p) => progress.push(p));
    expect(url).toBe(`${hub.url}/${FAKE_USER}/pushed-merge`);
    const pushed = hub.repoFiles(`${FAKE_USER}/pushed-merge`)!;
    const outputs = await engine.listOutputs();
    for (const file of outputs[0].files) {
      expect(Buffer.from(pushed.get(file.name)!).equals(await outputBytes(engine, 'to-push', file.name)), file.name).toBe(true);
    }
    expect(hub.commits.at(-1)!.lfsFiles).toEqual(['model.safetensors']);
    expect(progress[0].phase).toBe('creating');
    expect(progress.at(-1)).toMatchObject({ phase: 'done' });
    await expect(engine.push({ outputName: 'to-push', repo: 'x', private: true, accessToken: 'hf_bad' }, () => {})).rejects.toThrow(/rejected this token \(401\)/);
  });
});
