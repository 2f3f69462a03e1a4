import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { expectWithinUlp, magnitudes } from '../helpers/ulp';
import { runAlloy, tempDir, writeConfig } from './run-alloy';
import {
  breadcrumbsPruneRef,
  darePruneRef,
  deltaF32,
  dellaPruneRef,
  gtaMixRef,
  l1RescaleRef,
} from './sparse-reference-math';

const SEED = 7;

interface Case {
  method: string;
  models: Record<string, number>[];
  global?: Record<string, number | boolean>;
  consensus: boolean;
  normalize: boolean;
  rescale: boolean;
  lambda?: number;
  prune: (delta: Float32Array, params: Record<string, number>, stream: number, tensor: string, cols: number) => Float64Array;
  prettyName: string;
  paperUrl: string;
}

const dare: Case['prune'] = (d, p, stream, tensor) => darePruneRef(d, p.density, SEED, tensor, stream);
const breadcrumbs: Case['prune'] = (d, p) => breadcrumbsPruneRef(d, p.density, p.gamma ?? 0.01);
const della: Case['prune'] = (d, p, stream, tensor, cols) => dellaPruneRef(d, cols, p.density, p.epsilon ?? 0.15, SEED, tensor, stream);

const CASES: Case[] = [
  {
    method: 'dare_ties',
    models: [{ weight: 0.6, density: 0.5 }, { weight: 0.4, density: 0.7 }],
    consensus: true, normalize: false, rescale: true, prune: dare,
    prettyName: 'DARE TIES', paperUrl: 'https://arxiv.org/abs/2311.03099',
  },
  {
    method: 'dare_linear',
    models: [{ weight: 0.5, density: 0.3 }, { weight: 0.5, density: 0.8 }],
    global: { lambda: 1.5 },
    consensus: false, normalize: false, rescale: true, lambda: 1.5, prune: dare,
    prettyName: 'Linear DARE', paperUrl: 'https://arxiv.org/abs/2311.03099',
  },
  {
    method: 'breadcrumbs',
    // ft2 keeps the default gamma 0.01: the 32-element norms then drop no outlier (mergekit zeroes them)
    models: [{ weight: 0.7, density: 0.6, gamma: 0.05 }, { weight: 0.3, density: 0.8 }],
    consensus: false, normalize: false, rescale: false, prune: breadcrumbs,
    prettyName: 'Model Breadcrumbs', paperUrl: 'https://arxiv.org/abs/2312.06795',
  },
  {
    method: 'breadcrumbs_ties',
    models: [{ weight: 1, density: 0.5, gamma: 0.1 }, { weight: 1, density: 0.5, gamma: 0.1 }],
    global: { normalize: true },
    consensus: true, normalize: true, rescale: false, prune: breadcrumbs,
    prettyName: 'Model Breadcrumbs with TIES', paperUrl: 'https://arxiv.org/abs/2312.06795',
  },
  {
    method: 'della',
    models: [{ weight: 0.5, density: 0.5, epsilon: 0.1 }, { weight: 0.5, density: 0.4 }],
    consensus: true, normalize: true, rescale: true, prune: della,
    prettyName: 'DELLA', paperUrl: 'https://arxiv.org/abs/2406.11617',
  },
  {
    method: 'della_linear',
    models: [{ weight: 0.6, density: 0.6, epsilon: 0.2 }, { weight: 0.4, density: 0.5, epsilon: 0.3 }],
    consensus: false, normalize: false, rescale: true, prune: della,
    prettyName: 'Linear DELLA', paperUrl: 'https://arxiv.org/abs/2406.11617',
  },
];

const flow = (o: Record<string, number | boolean>): string => `{${Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ')}}`;

function configFor(c: Case): string {
  return [
    'models:',
    '  - model: ./base',
    ...c.models.flatMap((p, j) => [`  - model: ./ft${j + 1}`, `    parameters: ${flow(p)}`]),
    `merge_method: ${c.method}`,
    'base_model: ./base',
    ...(c.global ? [`parameters: ${flow(c.global)}`] : []),
    'dtype: float32',
  ].join('\n');
}

describe('alloy merge with the sparse GTA methods on tiny Llama models (f32)', () => {
  let dir: string;
  let base: TinyModel;
  let fts: TinyModel[];
  beforeAll(async () => {
    dir = tempDir();
    base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', seed: 41, numLayers: 2 });
    fts = [
      await makeFineTune(join(dir, 'ft1'), base, { seed: 42, deltaScale: 0.02 }),
      await makeFineTune(join(dir, 'ft2'), base, { seed: 43, deltaScale: 0.02 }),
    ];
  });

  for (const c of CASES) {
    it(`${c.method} matches the reference math of every tensor`, async () => {
      writeConfig(dir, `${c.method}.yml`, configFor(c));
      const r = await runAlloy(['merge', `${c.method}.yml`, `out-${c.method}`, '--random-seed', String(SEED), '--memory', '64k'], dir);
      expect(r.code, r.stderr).toBe(0);
      const out = readModelDir(join(dir, `out-${c.method}`));
      expect([...out.tensors.keys()].sort()).toEqual([...base.names].sort());
      for (const name of base.names) {
        const b = base.values.get(name)!;
        const xs = fts.map((f) => f.values.get(name)!);
        const shape = base.shapes.get(name)!;
        const cols = shape[shape.length - 1];
        const pruned = xs.map((x, j) => {
          const d = deltaF32(x, b);
          const kept = c.prune(d, c.models[j], j, name, cols);
          return c.rescale && c.models[j].density < 1 ? l1RescaleRef(d, kept) : kept;
        });
        const expected = gtaMixRef(b, pruned, c.models.map((m) => m.weight), c);
        const got = out.tensors.get(name)!;
        expect(got.dtype).toBe('F32');
        expectWithinUlp(got.values, expected, 'F32', 1, name, magnitudes(b, ...pruned));
      }
      const card = readFileSync(join(dir, `out-${c.method}`, 'README.md'), 'utf8');
      expect(card).toContain(`merged using the [${c.prettyName}](${c.paperUrl}) merge method`);
    });
  }

  it('breadcrumbs keeps the top of small tensors where mergekit would zero them', async () => {
    const out = readModelDir(join(dir, 'out-breadcrumbs'));
    const name = 'model.norm.weight';
    const b = base.values.get(name)!;
    const changed = out.tensors.get(name)!.values.filter((v, i) => v !== b[i]).length;
    expect(changed).toBeGreaterThan(0);
  });

  it('dare_linear and della_linear rescale every tensor to its exact L1 norm and keep ≈ density', async () => {
    for (const method of ['dare_linear', 'della_linear']) {
      const density = 0.4;
      writeConfig(dir, `one-${method}.yml`, [
        'models:',
        `  - {model: ./ft1, parameters: {weight: 1, density: ${density}, epsilon: 0.1}}`,
        `merge_method: ${method}`,
        'base_model: ./base',
        'dtype: float32',
      ].join('\n'));
      const r = await runAlloy(['merge', `one-${method}.yml`, `out-one-${method}`, '--quiet', '--random-seed', '3'], dir);
      expect(r.code, r.stderr).toBe(0);
      const out = readModelDir(join(dir, `out-one-${method}`));
      let kept = 0;
      let total = 0;
      for (const name of base.names) {
        const b = base.values.get(name)!;
        const d = deltaF32(fts[0].values.get(name)!, b);
        const got = out.tensors.get(name)!.values;
        let before = 0, after = 0;
        for (let i = 0; i < b.length; i++) {
          before += Math.abs(d[i]);
          after += Math.abs(got[i] - b[i]);
          if (got[i] !== b[i]) kept++;
        }
        total += b.length;
        expect(Math.abs(after / before - 1), `${method} ${name}`).toBeLessThan(1e-5);
      }
      const sigma = Math.sqrt(total * density * (1 - density));
      expect(Math.abs(kept - total * density), method).toBeLessThan(4 * sigma);
    }
  });

  it('the same seed reproduces a merge byte for byte; another seed changes it', async () => {
    const raw = (out: string) => readFileSync(join(dir, out, 'model.safetensors'));
    for (const [out, seed] of [['out-again', SEED], ['out-seed8', 8]] as const) {
      const r = await runAlloy(['merge', 'dare_ties.yml', out, '--quiet', '--random-seed', String(seed)], dir);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(raw('out-again').equals(raw('out-dare_ties'))).toBe(true);
    expect(raw('out-seed8').equals(raw('out-dare_ties'))).toBe(false);
  });

  it('della with density − epsilon ≤ 0 fails with the values, and writes nothing', async () => {
    writeConfig(dir, 'bad-della.yml', [
      'models:',
      '  - {model: ./ft1, parameters: {weight: 1, density: 0.1}}',
      'merge_method: della',
      'base_model: ./base',
    ].join('\n'));
    const r = await runAlloy(['merge', 'bad-della.yml', 'out-bad-della', '--quiet'], dir);
    // The config check usually catches it (exit 2); the merge itself refuses it too (exit 1).
    expect([1, 2]).toContain(r.code);
    expect(r.stderr).toMatch(/della: .*density 0\.1.*epsilon 0\.15/);
    expect(() => readFileSync(join(dir, 'out-bad-della', 'model.safetensors'))).toThrow();
  });
});
