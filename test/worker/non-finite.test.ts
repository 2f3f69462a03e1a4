import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MergeRequest } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { tempDir } from '../cli/run-alloy';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { memoryOpfs } from '../helpers/memory-opfs';
import { setTensorElements } from '../helpers/set-tensor-elements';

/** The app's path: the worker reports NaN/Inf per tensor, keeps them with the output, and refuses on request. */

const TENSOR = 'model.layers.0.self_attn.q_proj.weight'; // [64, 64]
let dir: string;

function localFiles(folder: string, name: string): File[] {
  return readdirSync(folder).map(
    (file) => Object.assign(new File([readFileSync(join(folder, file))], file), { webkitRelativePath: `${name}/${file}` }) as File,
  );
}

function request(outputName: string, refuseNonFinite?: boolean): MergeRequest {
  return {
    yaml: ['models:', '  - model: my-base', '  - model: my-nan', 'merge_method: slerp', 'base_model: my-base', 'parameters: {t: 0.5}', 'dtype: bfloat16'].join('\n'),
    models: [
      { key: 'my-base', source: { kind: 'local', name: 'my-base', files: localFiles(join(dir, 'base'), 'my-base') } },
      { key: 'my-nan', source: { kind: 'local', name: 'my-nan', files: localFiles(join(dir, 'nan'), 'my-nan') } },
    ],
    outputName,
    backend: 'cpu',
    ...(refuseNonFinite !== undefined ? { refuseNonFinite } : {}),
  };
}

function service(root: FileSystemDirectoryHandle): EngineService {
  return new EngineService({ storageRoot: async () => root, demoBaseUrl: 'http://127.0.0.1:9/demo-models/', defaults: { hubUrl: 'http://127.0.0.1:9' } });
}

beforeAll(async () => {
  dir = tempDir('alloy-worker-nonfinite-');
  const base = await makeTinyModel(join(dir, 'base'), { seed: 41, dtype: 'BF16', hiddenSize: 64, numLayers: 1 });
  await makeFineTune(join(dir, 'nan'), base, { seed: 42, deltaScale: 0.02 });
  setTensorElements(join(dir, 'nan'), TENSOR, [[0, 0x7fc0], [17, 0x7f80], [4000, 0xff80]]);
});

describe('EngineService and NaN/Inf', () => {
  it('returns the counts with the result, keeps them in the output list and notes them in the model card', async () => {
    const engine = service(memoryOpfs().root);
    const result = await engine.merge(request('with-nan'), () => {});
    const expected = [{ tensor: TENSOR, inputs: [{ model: 'my-nan', counts: { nan: 1, posInf: 1, negInf: 1 } }], output: { nan: 4096, posInf: 0, negInf: 0 } }];
    expect(result.nonFinite).toEqual(expected);
    expect((await engine.listOutputs())[0].nonFinite).toEqual(expected);
    const card = await (await engine.outputFile('with-nan', 'README.md')).text();
    expect(card).toContain(`\n## Non-finite values\n`);
    expect(card).toContain(`* \`${TENSOR}\`: output 4,096 NaN; input \`my-nan\` 1 NaN, 1 +Inf, 1 -Inf\n`);
    expect(result.files.find((f) => f.name === 'README.md')!.size).toBe(new TextEncoder().encode(card).byteLength);
  });

  it('refuses under refuseNonFinite: says which tensor and which setting, and keeps nothing', async () => {
    const opfs = memoryOpfs();
    const engine = service(opfs.root);
    const error = (await engine.merge(request('strict', true), () => {}).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('NonFiniteError');
    expect(error.message).toBe(
      `The merge stopped at NaN or Inf values: ${TENSOR}: output 4,096 NaN; input my-nan 1 NaN, 1 +Inf, 1 -Inf. Nothing was kept. ` +
        'Settings → "Refuse results with NaN/Inf" is on; turn it off to finish such a merge with a warning.',
    );
    expect(await engine.listOutputs()).toEqual([]);
    const outputs = await opfs.root.getDirectoryHandle('alloy-outputs');
    const names: string[] = [];
    for await (const name of (outputs as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
    expect(names).toEqual([]);
  });
});
