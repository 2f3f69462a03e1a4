import { readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adapterBindingKey, type ModelBinding } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { ModelResolver } from '../../src/worker/model-sources';
import { parseMergeConfig } from '../../src/config';
import { HubClient } from '../../src/hub';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { makeHubAdapter, makeHubModels, serveHubAdapter, serveHubModels, type HubAdapter, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { writeAdapter } from '../lora/adapters';
import { memoryOpfs } from '../helpers/memory-opfs';

/**
 * `model+lora` in the worker (docs/lora.md §1): adapters from the fake hub (at a revision, cached
 * or streamed, verified like model files) and from picked folders, merged byte for byte as the
 * CLI merges the same files; adapters that do not fit fail the plan with the YAML path, before
 * anything is written.
 */
let hub: FakeHub;
let models: HubModels;
let adapter: HubAdapter;
let otherBase: HubAdapter;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
  adapter = makeHubAdapter(models);
  serveHubAdapter(hub, adapter);
  // An adapter of another model: its q_proj factors are for a hidden size of 48.
  otherBase = { id: 'alloy-test/lora-other', dir: join(models.root, 'alloy-test/lora-other'), modules: ['model.layers.0.self_attn.q_proj'], rank: 4, alpha: 8 };
  writeAdapter(otherBase.dir, { base_model_name_or_path: 'someone/other-model', target_modules: ['q_proj'] }, [{ module: 'model.layers.0.self_attn.q_proj', rank: 4, weightShape: [48, 48] }]);
  serveHubAdapter(hub, otherBase);
  // A repo with the weights but no adapter_config.json.
  const noConfig = join(models.root, 'alloy-test/lora-noconfig');
  mkdirSync(noConfig, { recursive: true });
  copyFileSync(join(adapter.dir, 'adapter_model.safetensors'), join(noConfig, 'adapter_model.safetensors'));
  hub.addModelDir('alloy-test/lora-noconfig', noConfig);
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => {
  hub.resetLog();
  hub.faults = {};
});

function service(root = memoryOpfs().root): EngineService {
  return new EngineService({
    storageRoot: async () => root,
    demoBaseUrl: 'http://127.0.0.1:9/unused/',
    defaults: { hubUrl: hub.url, download: { blockBytes: 32 * 1024, retries: 1, retryBaseDelayMs: 5, streamWindowBytes: 64 * 1024 } },
  });
}

const yamlWith = (adapterRef: string): string =>
  [
    'models:',
    `  - model: ${models.ids.base}+${adapterRef}`,
    '    parameters: {weight: 0.6}',
    `  - model: ${models.ids.a}`,
    '    parameters: {weight: 0.4}',
    'merge_method: linear',
    'dtype: bfloat16',
    '',
  ].join('\n');

const request = (yaml: string, outputName: string, extra: Record<string, unknown> = {}) => ({ yaml, models: [] as ModelBinding[], outputName, backend: 'cpu' as const, randomSeed: 1, ...extra });

const localFiles = (dir: string, folder: string): File[] =>
  readdirSync(dir).map((name) => Object.assign(new File([readFileSync(join(dir, name))], name), { webkitRelativePath: `${folder}/${name}` }) as File);

let cliDir = '';
async function cliOutput(): Promise<string> {
  if (cliDir) return cliDir;
  writeConfig(models.root, 'lora.yml', yamlWith(adapter.id));
  const cli = await runAlloy(['merge', 'lora.yml', 'lora-cli', '--backend', 'cpu', '--random-seed', '1'], models.root);
  expect(cli.stderr).not.toMatch(/failed|error/i);
  expect(cli.code).toBe(0);
  return (cliDir = join(models.root, 'lora-cli'));
}

async function expectSameAsCli(engine: EngineService, name: string, files: readonly { name: string }[], sameYaml = true): Promise<void> {
  const dir = await cliOutput();
  expect(files.map((f) => f.name).sort()).toEqual(readdirSync(dir).sort());
  for (const file of files) {
    if (file.name === 'README.md') continue; // lists Hub models as links
    if (!sameYaml && file.name === 'mergekit_config.yml') continue; // names the adapter as the YAML did
    const ours = Buffer.from(await (await engine.outputFile(name, file.name)).arrayBuffer());
    expect(ours.equals(readFileSync(join(dir, file.name))), file.name).toBe(true);
  }
}

describe('model+lora in the worker', () => {
  it('binds a model+lora reference: the page’s model and adapter bindings, else Hub ids; unknown local adapters are reported with the YAML path', async () => {
    const resolver = new ModelResolver(() => new HubClient({ hubUrl: hub.url }), () => 'http://127.0.0.1:9/', fetch);
    const { config } = parseMergeConfig(`models:\n  - model: ${models.ids.a}\n  - model: ${models.ids.base}+./my-lora\nmerge_method: linear\nparameters: {weight: 1}\n`);
    const unbound = await resolver.bind(config, []);
    expect(unbound.adapters).toEqual([]);
    expect(unbound.errors).toEqual([
      "models[1].model: LoRA adapter ./my-lora of alloy-test/base+./my-lora is not among the chosen adapters and is not a Hub id (namespace/name): pick its folder (adapter_config.json and adapter_model.safetensors) in the model's row, or fix the part after '+' in the YAML",
    ]);
    // The model as the page bound it (by its own key), the adapter by lora:<name>.
    const files = localFiles(adapter.dir, 'my-lora');
    const bound = await resolver.bind(config, [
      { key: models.ids.base, source: { kind: 'hub', repo: models.ids.base, revision: 'main' } },
      { key: adapterBindingKey('./my-lora'), source: { kind: 'local', name: 'my-lora', files } },
    ]);
    expect(bound.errors).toEqual([]);
    expect(bound.bound).toContainEqual({ key: `${models.ids.base}+./my-lora`, source: { kind: 'hub', repo: models.ids.base, revision: 'main' } });
    expect(bound.adapters).toEqual([
      { modelKey: `${models.ids.base}+./my-lora`, key: 'lora:./my-lora', name: './my-lora', source: { kind: 'local', name: 'my-lora', files }, yamlPath: 'models[1].model' },
    ]);
    // A Hub id after '+' is read from the Hub at its revision.
    const hubRef = parseMergeConfig(`models:\n  - model: ${models.ids.base}@main+${adapter.id}@main\nmerge_method: linear\nparameters: {weight: 1}\n`).config;
    const fromHub = await resolver.bind(hubRef, []);
    expect(fromHub.adapters).toEqual([
      { modelKey: `${models.ids.base}@main+${adapter.id}@main`, key: `lora:${adapter.id}@main`, name: `${adapter.id}@main`, source: { kind: 'hub', repo: adapter.id, revision: 'main' }, yamlPath: 'models[0].model' },
    ]);
    expect(fromHub.bound).toEqual([{ key: `${models.ids.base}@main+${adapter.id}@main`, source: { kind: 'hub', repo: models.ids.base, revision: 'main' } }]);
  });

  it('inspects a Hub adapter: rank, alpha, targets and base from adapter_config.json and the header only', async () => {
    const summary = await service().inspectAdapter({ kind: 'hub', repo: adapter.id });
    expect(summary).toEqual({
      key: adapter.id,
      rank: 4,
      alpha: 8,
      rslora: false,
      ranks: [2, 4],
      modules: adapter.modules.length,
      savedModules: 1,
      targetModules: 'q_proj, v_proj, down_proj',
      baseModel: models.ids.base,
      bytes: readFileSync(join(adapter.dir, 'adapter_model.safetensors')).byteLength,
    });
    const weights = hub.requests.filter((r) => r.file?.path === 'adapter_model.safetensors');
    expect(weights.reduce((s, r) => s + r.bytesSent, 0)).toBeLessThan(8 * 1024);
  });

  it('plans a Hub adapter: which tensors it changes, at which rank and scale; its files are verified downloads', async () => {
    const plan = await service().plan(request(yamlWith(adapter.id), 'p'));
    expect(plan.errors).toEqual([]);
    expect(plan.ok).toBe(true);
    const entry = plan.adapters?.[0];
    expect(plan.adapters?.length).toBe(1);
    expect(entry?.model).toBe(`${models.ids.base}+${adapter.id}`);
    expect(entry?.adapter).toBe(adapter.id);
    const byName = new Map(entry!.tensors.map((t) => [t.name, t]));
    expect(byName.get('model.layers.0.self_attn.q_proj.weight')).toEqual({ name: 'model.layers.0.self_attn.q_proj.weight', kind: 'lora', rank: 4, scale: 2, transposed: false });
    // rank_pattern: rank 2, scale alpha/r = 8/2.
    expect(byName.get('model.layers.1.mlp.down_proj.weight')).toEqual({ name: 'model.layers.1.mlp.down_proj.weight', kind: 'lora', rank: 2, scale: 4, transposed: false });
    expect(byName.get('lm_head.weight')).toEqual({ name: 'lm_head.weight', kind: 'replace' });
    expect(entry!.tensors.length).toBe(adapter.modules.length + 1);
    expect(plan.verification?.verified).toContainEqual({ model: `lora:${adapter.id}`, file: 'adapter_config.json', hash: 'git-blob' });
    expect(plan.verification?.onDownload).toContainEqual({ model: `lora:${adapter.id}`, file: 'adapter_model.safetensors', hash: 'sha256' });
  });

  it('merges base+Hub adapter through the cache: byte for byte what `alloy merge` writes from the same files', async () => {
    const engine = service();
    const result = await engine.merge(request(yamlWith(adapter.id), 'lora-cached', { inputMode: 'cache' }), () => {});
    expect(result.inputMode).toBe('cache');
    await expectSameAsCli(engine, 'lora-cached', result.files);
    expect(result.verified).toContainEqual({ model: `lora:${adapter.id}`, file: 'adapter_model.safetensors', hash: 'sha256' });
    const cache = await engine.listCache();
    expect(cache.filter((c) => c.repo === adapter.id).map((c) => [c.file, c.complete])).toEqual([['adapter_model.safetensors', true]]);
  });

  it('streams a Hub adapter in stream mode (nothing cached) with the same bytes', async () => {
    const engine = service();
    const result = await engine.merge(request(yamlWith(adapter.id), 'lora-stream', { inputMode: 'stream' }), () => {});
    expect(result.inputMode).toBe('stream');
    expect(await engine.listCache()).toEqual([]);
    await expectSameAsCli(engine, 'lora-stream', result.files);
    const adapterFile = [...(result.verified ?? []), ...(result.unverified ?? [])].filter((v) => v.model === `lora:${adapter.id}` && v.file === 'adapter_model.safetensors');
    expect(adapterFile.length).toBe(1);
  });

  it('merges with an adapter from a picked folder, bound by lora:<name>', async () => {
    const engine = service();
    const yaml = yamlWith('my-lora');
    const models_ = [{ key: adapterBindingKey('my-lora'), source: { kind: 'local' as const, name: 'my-lora', files: localFiles(adapter.dir, 'my-lora') } }];
    const result = await engine.merge({ ...request(yaml, 'lora-local'), models: models_ }, () => {});
    await expectSameAsCli(engine, 'lora-local', result.files, false);
    expect(result.files.filter((f) => f.name.endsWith('.safetensors')).length).toBeGreaterThan(0);
    expect(hub.requests.some((r) => r.path.includes('lora-a'))).toBe(false);
  });

  it('refuses an adapter of another base and a repo without adapter_config.json, with the YAML path, writing nothing', async () => {
    const engine = service();
    const other = await engine.plan(request(yamlWith(otherBase.id), 'bad'));
    expect(other.ok).toBe(false);
    expect(other.errors.length).toBe(1);
    expect(other.errors[0]).toMatch(/^models\[0\]\.model: LoRA adapter alloy-test\/lora-other: module "model\.layers\.0\.self_attn\.q_proj": the model's weight is \[64, 64\] but the adapter's lora_A is \[4, 48\].*does not fit model alloy-test\/base\+alloy-test\/lora-other \(it was trained on "someone\/other-model"\)/);
    await expect(engine.merge(request(yamlWith(otherBase.id), 'bad'), () => {})).rejects.toThrow(/^models\[0\]\.model: LoRA adapter alloy-test\/lora-other/);

    const missing = await engine.plan(request(yamlWith('alloy-test/lora-noconfig'), 'bad'));
    expect(missing.errors).toEqual([
      "models[0].model: LoRA adapter alloy-test/lora-noconfig: alloy-test/lora-noconfig has no adapter_config.json. A PEFT adapter folder holds adapter_config.json and adapter_model.safetensors; check the path after '+'.",
    ]);
    await expect(engine.merge(request(yamlWith('alloy-test/lora-noconfig'), 'bad'), () => {})).rejects.toThrow(/^models\[0\]\.model: LoRA adapter alloy-test\/lora-noconfig: .*no adapter_config\.json/);
    const gone = await engine.plan(request(yamlWith('alloy-test/no-such-adapter'), 'bad'));
    expect(gone.errors[0]).toMatch(/^models\[0\]\.model: LoRA adapter alloy-test\/no-such-adapter: /);
    expect(await engine.listOutputs()).toEqual([]);
    // Nothing of the weights was downloaded for a refused plan.
    expect(await engine.listCache()).toEqual([]);
  });
});
