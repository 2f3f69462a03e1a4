import { cpSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MergeRequest, ModelBinding, RunProgress } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { makeHubModels, MULTI_BLOCK_MODEL, serveHubModels, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { TEXT_CHARACTERS } from '../fixtures/models';
import { memoryOpfs } from '../helpers/memory-opfs';

/**
 * "Build a mixture of experts" in the worker (docs/moe.md §1): from fake-hub models (downloaded
 * through the verified cache) and a picked local folder, the output files are byte for byte those
 * `alloy moe` writes from the same folders with the same seed; a bad config or a cancelled build
 * leaves no output behind.
 */
let hub: FakeHub;
let models: HubModels;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels({ ...MULTI_BLOCK_MODEL, vocabSize: 80, tokenizer: { characters: TEXT_CHARACTERS, addBos: true } });
  serveHubModels(hub, models);
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});

function service(): EngineService {
  return new EngineService({
    storageRoot: async () => memoryOpfs().root,
    demoBaseUrl: 'http://127.0.0.1:9/unused/',
    defaults: { hubUrl: hub.url, download: { blockBytes: 32 * 1024, retries: 1, retryBaseDelayMs: 5 } },
  });
}

const localFiles = (dir: string, folder: string): File[] =>
  readdirSync(dir).map((name) => Object.assign(new File([readFileSync(join(dir, name))], name), { webkitRelativePath: `${folder}/${name}` }) as File);

/** ft-b is picked as a local folder named `my-expert`; the CLI reads the same files from `<root>/my-expert`. */
const moeYaml = (gateMode: string, expertB = 'my-expert'): string =>
  [
    `base_model: ${models.ids.base}`,
    `gate_mode: ${gateMode}`,
    'dtype: bfloat16',
    'experts_per_token: 2',
    'experts:',
    `  - source_model: ${models.ids.a}`,
    '    positive_prompts: ["solve for x"]',
    '    noise_scale: 0.01',
    `  - source_model: ${expertB}`,
    '    positive_prompts: ["write a poem about the sea"]',
    '    negative_prompts: ["a sum"]',
    '',
  ].join('\n');

const request = (yaml: string, outputName: string, models_: ModelBinding[] = []): MergeRequest => ({ yaml, models: models_, outputName, randomSeed: 7 });

describe('a mixture of experts built in the worker', () => {
  it('builds from Hub models and a local folder: the same files as `alloy moe`, with progress per tensor', async () => {
    const engine = service();
    const local = [{ key: 'my-expert', source: { kind: 'local' as const, name: 'my-expert', files: localFiles(models.b.dir, 'my-expert') } }];
    const yaml = moeYaml('hidden');
    const progress: RunProgress[] = [];
    const result = await engine.moe(request(yaml, 'moe-hidden', local), (p) => progress.push(p));
    const names = result.files.map((f) => f.name).sort();
    expect(names).toEqual(expect.arrayContaining(['README.md', 'config.json', 'mergekit_moe_config.yml', 'model.safetensors', 'tokenizer.json']));
    // Both Hub models' weights were downloaded and verified; the local folder has nothing to verify.
    expect(result.verified?.map((v) => `${v.model}/${v.file}`).sort()).toEqual([`${models.ids.a}/model.safetensors`, `${models.ids.base}/model.safetensors`].sort());
    expect(progress[0].phase).toBe('preparing');
    expect(progress.some((p) => p.phase === 'downloading' && p.downloads.length === 2)).toBe(true);
    const last = progress.at(-1)!;
    expect(last.phase).toBe('done');
    expect(last.tensorsTotal).toBeGreaterThan(0);
    expect(last.tensorsDone).toBe(last.tensorsTotal);
    const weights = readFileSync(join(models.root, models.ids.a, 'model.safetensors')).byteLength; // same shapes in every expert
    expect(last.bytesWritten).toBeGreaterThan(weights);
    expect(progress.some((p) => p.phase === 'merging' && p.tensorsDone === 1 && p.currentTensor === 'model.embed_tokens.weight')).toBe(true);
    expect((await engine.listOutputs()).map((o) => o.outputName)).toEqual(['moe-hidden']);

    // The CLI on the same files: ft-b copied under the local folder's name.
    const cliRoot = models.root;
    cpSync(models.b.dir, join(cliRoot, 'my-expert'), { recursive: true });
    writeConfig(cliRoot, 'moe.yml', yaml);
    const cli = await runAlloy(['moe', 'moe.yml', 'cli-moe-hidden', '--random-seed', '7', '--quiet'], cliRoot);
    expect(cli.code, cli.stderr).toBe(0);
    expect(readdirSync(join(cliRoot, 'cli-moe-hidden')).sort()).toEqual(names);
    for (const file of ['model.safetensors', 'config.json', 'tokenizer.json', 'mergekit_moe_config.yml']) {
      const ours = Buffer.from(await (await engine.outputFile('moe-hidden', file)).arrayBuffer());
      expect(ours.equals(readFileSync(join(cliRoot, 'cli-moe-hidden', file))), file).toBe(true);
    }
  });

  it('random gates follow the seed as `alloy moe --random-seed` does', async () => {
    const engine = service();
    const yaml = moeYaml('random', models.ids.b);
    await engine.moe(request(yaml, 'moe-random'), () => undefined);
    writeConfig(models.root, 'moe-random.yml', yaml);
    const cli = await runAlloy(['moe', 'moe-random.yml', 'cli-moe-random', '--random-seed', '7', '--quiet'], models.root);
    expect(cli.code, cli.stderr).toBe(0);
    const ours = Buffer.from(await (await engine.outputFile('moe-random', 'model.safetensors')).arrayBuffer());
    expect(ours.equals(readFileSync(join(models.root, 'cli-moe-random', 'model.safetensors')))).toBe(true);
  });

  it('a config these models cannot build, an unbound local folder, a cancelled build: an error naming it, no output', async () => {
    const engine = service();
    await expect(engine.moe(request(moeYaml('hidden'), 'unbound'), () => undefined)).rejects.toThrow(/experts\[1\]\.source_model: Model my-expert of the YAML is not among the chosen models/);
    await expect(engine.moe(request(moeYaml('hidden').replace('experts_per_token: 2', 'experts_per_token: 3'), 'too-many'), () => undefined)).rejects.toThrow(
      /^Invalid mergekit-moe config:\nline 6: experts: there are 2 experts, fewer than experts_per_token \(3\)/,
    );
    const started = engine.moe(request(moeYaml('random', models.ids.b), 'cancelled'), () => void engine.cancel());
    await expect(started).rejects.toThrow('The build was cancelled; nothing was written.');
    expect(await engine.listOutputs()).toEqual([]);
    // The worker is free again: the next build runs.
    await engine.moe(request(moeYaml('random', models.ids.b), 'after-cancel'), () => undefined);
    expect((await engine.listOutputs()).map((o) => o.outputName)).toEqual(['after-cancel']);
  });
});
