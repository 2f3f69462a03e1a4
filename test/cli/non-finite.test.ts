import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { setTensorElements } from '../helpers/set-tensor-elements';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

/** NaN/±Inf of decoded values, counted with JavaScript's own tests. */
function classify(values: Iterable<number>): { nan: number; posInf: number; negInf: number } {
  const c = { nan: 0, posInf: 0, negInf: 0 };
  for (const v of values) {
    if (Number.isNaN(v)) c.nan++;
    else if (v === Infinity) c.posInf++;
    else if (v === -Infinity) c.negInf++;
  }
  return c;
}

const NAN_TENSOR = 'model.layers.1.self_attn.q_proj.weight'; // [64, 64]: 4,096 elements

const SLERP = [
  'slices:',
  '  - sources:',
  '      - {model: ./ft-a, layer_range: [0, 2]}',
  '      - {model: ./ft-b, layer_range: [0, 2]}',
  'merge_method: slerp',
  'base_model: ./ft-a',
  'parameters: {t: 0.4}',
  'dtype: bfloat16',
].join('\n');

describe('alloy merge counts NaN and Inf (issue #10, item 3)', () => {
  let dir: string;
  let a: TinyModel;
  let b: TinyModel;
  beforeAll(async () => {
    dir = tempDir('alloy-nonfinite-');
    const base = await makeTinyModel(join(dir, 'base'), { seed: 11, dtype: 'F32', hiddenSize: 64, numLayers: 2 });
    a = await makeFineTune(join(dir, 'ft-a'), base, { seed: 12, deltaScale: 0.02 });
    b = await makeFineTune(join(dir, 'ft-b'), base, { seed: 13, deltaScale: 0.02 });
    // The NaN inputs live in their own copy, so the other cases merge finite models.
    await makeFineTune(join(dir, 'ft-nan'), base, { seed: 12, deltaScale: 0.02 });
    setTensorElements(join(dir, 'ft-nan'), NAN_TENSOR, [[0, 0x7fc00000], [1234, 0xffc00001], [4095, 0x7f800001]]);
  });

  it('weights of 1e38 with f16 output: every overflowed element is counted as ±Inf and warned about', async () => {
    writeConfig(dir, 'overflow.yml', [
      'models:',
      '  - {model: ./ft-a, parameters: {weight: 1.0e+38}}',
      '  - {model: ./ft-b, parameters: {weight: 1.0e+38}}',
      'merge_method: linear',
      'parameters: {normalize: false}',
      'dtype: float16',
    ].join('\n'));
    const r = await runAlloy(['merge', 'overflow.yml', 'out-overflow', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = readModelDir(join(dir, 'out-overflow'));
    // Hand expectation: 1e38·(x_a + x_b) is far beyond f16's 65504 unless x_a = -x_b exactly, so
    // the output's sign of Inf is the sign of x_a + x_b.
    let posInf = 0;
    let negInf = 0;
    for (const name of a.names) {
      const xa = a.values.get(name)!;
      const xb = b.values.get(name)!;
      let p = 0;
      let n = 0;
      for (let i = 0; i < xa.length; i++) {
        if (xa[i] + xb[i] > 0) p++;
        else if (xa[i] + xb[i] < 0) n++;
      }
      expect(classify(out.tensors.get(name)!.values), name).toEqual({ nan: 0, posInf: p, negInf: n });
      posInf += p;
      negInf += n;
    }
    expect(posInf + negInf).toBeGreaterThan(50_000);
    const total = (posInf + negInf).toLocaleString('en-US');
    expect(r.stderr).toContain(`warning: NaN or Inf values in ${a.names.length} tensors: ${total} in the output (--strict refuses such results):\n`);
    // Ten tensors by name, then the rest counted.
    expect(r.stderr).toContain(`\n  and ${a.names.length - 10} more tensors\n`);
    const embed = out.tensors.get('model.embed_tokens.weight')!.values;
    const c = classify(embed);
    expect(r.stderr).toContain(`  model.embed_tokens.weight: output ${c.posInf.toLocaleString('en-US')} +Inf, ${c.negInf.toLocaleString('en-US')} -Inf\n`);
    const card = readFileSync(join(dir, 'out-overflow', 'README.md'), 'utf8');
    expect(card).toContain(`\n## Non-finite values\n\nAlloy found NaN or Inf values in ${a.names.length} tensors: ${total} in the output.`);
    expect(card).toContain(`* \`model.embed_tokens.weight\`: output ${c.posInf.toLocaleString('en-US')} +Inf, ${c.negInf.toLocaleString('en-US')} -Inf\n`);
  });

  it('3 NaN inputs become 4,096 NaN after slerp: the warning names the tensor, its input and both counts', async () => {
    writeConfig(dir, 'slerp-nan.yml', SLERP.replace('./ft-a', './ft-nan').replace('./ft-a', './ft-nan'));
    const r = await runAlloy(['merge', 'slerp-nan.yml', 'out-slerp', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = readModelDir(join(dir, 'out-slerp'));
    expect(classify(out.tensors.get(NAN_TENSOR)!.values)).toEqual({ nan: 4096, posInf: 0, negInf: 0 });
    for (const [name, t] of out.tensors) if (name !== NAN_TENSOR) expect(classify(t.values), name).toEqual({ nan: 0, posInf: 0, negInf: 0 });
    expect(r.stderr).toBe(
      'warning: NaN or Inf values in 1 tensor: 4,096 in the output, 1 with NaN/Inf already in an input (--strict refuses such results):\n' +
        `  ${NAN_TENSOR}: output 4,096 NaN; input ./ft-nan 3 NaN\n`,
    );
    const card = readFileSync(join(dir, 'out-slerp', 'README.md'), 'utf8');
    expect(card.endsWith(`* \`${NAN_TENSOR}\`: output 4,096 NaN; input \`./ft-nan\` 3 NaN\n`)).toBe(true);
  });

  it('--strict refuses the same merge: exit 1, the tensor named, no output folder left behind', async () => {
    writeConfig(dir, 'slerp-nan.yml', SLERP.replace('./ft-a', './ft-nan').replace('./ft-a', './ft-nan'));
    const r = await runAlloy(['merge', 'slerp-nan.yml', 'out-strict', '--strict', '--quiet'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `alloy: --strict: refused a result with NaN or Inf values: ${NAN_TENSOR}: output 4,096 NaN; input ./ft-nan 3 NaN\n` +
        'Nothing was written. Without --strict the merge finishes, lists every such tensor and notes them in the model card.\n',
    );
    expect(existsSync(join(dir, 'out-strict'))).toBe(false);
    expect(readdirSync(dir).some((f) => f.includes('alloy-tmp'))).toBe(false);
  });

  it('a finite merge says nothing, even under --strict, and its model card has no such section', async () => {
    writeConfig(dir, 'slerp.yml', SLERP);
    const r = await runAlloy(['merge', 'slerp.yml', 'out-clean', '--strict', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(readFileSync(join(dir, 'out-clean', 'README.md'), 'utf8')).not.toContain('Non-finite');
  });

  it('--strict is a merge option only', async () => {
    const r = await runAlloy(['plan', 'slerp.yml', '--strict'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option --strict/);
  });
});
