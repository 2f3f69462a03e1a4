import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderProgressLine } from '../../src/cli/progress-bar';
import type { MergeProgress } from '../../src/engine';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

/** A safetensors file from a header object and data bytes, with an optional lying length field. */
function rawSafetensors(header: unknown, data: Uint8Array, lengthField?: number): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(lengthField ?? json.length));
  return Buffer.concat([prefix, json, data]);
}

const LINEAR = 'models:\n  - {model: ./base, parameters: {weight: 1}}\n  - {model: ./ft, parameters: {weight: 1}}\nmerge_method: linear\n';

describe('malformed model files are rejected with their message and no output', () => {
  const cases: { name: string; corrupt: (ftDir: string) => void; message: RegExp }[] = [
    {
      name: 'header length past the end of the file',
      corrupt: (d) => writeFileSync(join(d, 'model.safetensors'), rawSafetensors({}, new Uint8Array(0), 1000)),
      message: /header length field says 1000 bytes but only 2 bytes follow/,
    },
    {
      name: 'header that is not JSON',
      corrupt: (d) => writeFileSync(join(d, 'model.safetensors'), rawSafetensors('{"a": [', new Uint8Array(0))),
      message: /not valid JSON/,
    },
    {
      name: 'shape that does not match its byte range',
      corrupt: (d) =>
        writeFileSync(join(d, 'model.safetensors'), rawSafetensors({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8))),
      message: /shape \[3\] of F32 \(4 bytes each\) needs 12 bytes but data_offsets \[0, 8\] span 8/,
    },
    {
      name: 'overlapping tensors',
      corrupt: (d) =>
        writeFileSync(
          join(d, 'model.safetensors'),
          rawSafetensors(
            { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
            new Uint8Array(12),
          ),
        ),
      message: /overlap tensor "a"/,
    },
    {
      name: 'unknown dtype',
      corrupt: (d) =>
        writeFileSync(join(d, 'model.safetensors'), rawSafetensors({ x: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2))),
      message: /dtype "Q4_K" is not supported/,
    },
    {
      name: 'truncated data',
      corrupt: (d) => {
        const bytes = readFileSync(join(d, 'model.safetensors'));
        writeFileSync(join(d, 'model.safetensors'), bytes.subarray(0, bytes.length - 6));
      },
      message: /tensors cover \d+ bytes of data but the file holds \d+ bytes|run past the end of the data section/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = tempDir();
      const base = await makeTinyModel(join(dir, 'base'), { seed: 1 });
      await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
      c.corrupt(join(dir, 'ft'));
      writeConfig(dir, 'c.yml', LINEAR);
      const r = await runAlloy(['merge', 'c.yml', 'out', '--quiet'], dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(c.message);
      expect(r.stderr).toContain('model.safetensors');
      expect(readdirSync(dir).sort()).toEqual(['base', 'c.yml', 'ft']);
    });
  }

  it('a shard index that names a tensor its shard lacks', async () => {
    const dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2, shards: 2 });
    const indexFile = join(dir, 'ft', 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    const [first, second] = [...new Set(Object.values(index.weight_map) as string[])].sort();
    const moved = Object.keys(index.weight_map).find((k) => index.weight_map[k] === first)!;
    index.weight_map[moved] = second;
    writeFileSync(indexFile, JSON.stringify(index));
    writeConfig(dir, 'c.yml', LINEAR);
    const r = await runAlloy(['merge', 'c.yml', 'out', '--quiet'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(moved);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});

describe('alloy plan', () => {
  it('prints tensors, inputs, parameters and warnings without writing anything', async () => {
    const dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
    writeConfig(dir, 'c.yml', 'models:\n  - model: ./ft\n    parameters: {weight: 0.5, density: [1, 0.5]}\nbase_model: ./base\nmerge_method: ties\n');
    const r = await runAlloy(['plan', 'c.yml'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Method: ties');
    expect(r.stdout).toMatch(/Output: 21 tensors, .* in 1 shard\(s\) \(model.safetensors\)/);
    expect(r.stdout).toContain('  model.layers.1.mlp.down_proj.weight [32, 48] F32 ties normalize=1 rescale=0 int8_mask=0 lambda=1');
    expect(r.stdout).toContain('    ./ft: model.layers.1.mlp.down_proj.weight F32 weight=0.5 density=0.5');
    expect(r.stdout).toContain('    ./base (base): model.layers.1.mlp.down_proj.weight F32');
    expect(readdirSync(dir).sort()).toEqual(['base', 'c.yml', 'ft']);
  });
});

describe('the installed `alloy` command', () => {
  let dir: string;
  const bin = resolve('bin/alloy.js');
  beforeAll(async () => {
    if (!existsSync(resolve('dist/cli/main.js'))) execFileSync('npm', ['run', 'build:cli'], { stdio: 'ignore' });
    dir = tempDir();
    const base = await makeTinyModel(join(dir, 'models', 'base'), { seed: 1, dtype: 'BF16' });
    await makeFineTune(join(dir, 'models', 'ft'), base, { seed: 2 });
  });

  it('resolves relative model paths against the working directory and exits 0', () => {
    writeConfig(dir, 'c.yml', 'models:\n  - {model: models/base, parameters: {weight: 1}}\n  - {model: models/ft, parameters: {weight: 3}}\nmerge_method: linear\n');
    const r = spawnSync(process.execPath, [bin, 'merge', 'c.yml', 'out'], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Wrote .*out: 21 tensors/);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(
      ['README.md', 'config.json', 'generation_config.json', 'mergekit_config.yml', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].sort(),
    );
  });

  it('exits 2 for usage errors and for a missing model (a config problem, issue #10), leaving no folder behind', () => {
    expect(spawnSync(process.execPath, [bin, 'frobnicate'], { cwd: dir }).status).toBe(2);
    writeConfig(dir, 'missing.yml', 'models:\n  - {model: models/nope, parameters: {weight: 1}}\nmerge_method: linear\n');
    const r = spawnSync(process.execPath, [bin, 'merge', 'missing.yml', 'out2'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Model models\/nope: folder .*models\/nope does not exist/);
    expect(existsSync(join(dir, 'out2'))).toBe(false);
    expect(readdirSync(dir).some((f) => f.includes('alloy-tmp'))).toBe(false);
  });

  it('refuses to write into a non-empty output folder', () => {
    const r = spawnSync(process.execPath, [bin, 'merge', 'c.yml', 'models'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/already exists and is not empty/);
  });
});

describe('progress line', () => {
  const progress: MergeProgress = {
    phase: 'merging',
    tensorsDone: 10,
    tensorsTotal: 40,
    currentTensor: 'x',
    inputBytesDone: 250e6,
    inputBytesTotal: 1e9,
    bytesRead: 0,
    bytesWritten: 0,
    elapsedMs: 5000,
    bytesPerSecond: 50e6,
    etaMs: 15000,
    stageTimes: { readMs: 0, computeMs: 0, writeMs: 0 },
  };

  it('shows percentage, tensors, speed and ETA within the terminal width', () => {
    const line = renderProgressLine(progress, 80);
    expect(line).toMatch(/^\[#{10}\.{30}\]  25% 10\/40 tensors 50\.0 MB\/s ETA 15s$/);
    expect(line.length).toBeLessThanOrEqual(80);
  });

  it('adds where the time went when the terminal is wide enough', () => {
    const timed = { ...progress, stageTimes: { readMs: 1200, computeMs: 2600, writeMs: 200 } };
    const wide = renderProgressLine(timed, 120);
    expect(wide).toMatch(/ETA 15s \(read 30% compute 65% write 5%\)$/);
    expect(wide.length).toBeLessThanOrEqual(120);
    expect(renderProgressLine(timed, 80)).not.toMatch(/read/);
  });
});
