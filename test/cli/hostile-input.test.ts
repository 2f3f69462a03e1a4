/**
 * Issue #10 on the command line: hostile configs, absurd numbers, odd files and paths, signals.
 * Each case checks the exit status, the message (what, where, what to do) and that nothing that
 * looks like output is left behind.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { BILLION_LAUGHS } from '../config/hostile-yaml';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

const LINEAR = 'models:\n  - {model: ./base, parameters: {weight: 1}}\n  - {model: ./ft, parameters: {weight: 1}}\nmerge_method: linear\n';

async function twoModels(): Promise<string> {
  const dir = tempDir();
  const base = await makeTinyModel(join(dir, 'base'), { seed: 1 });
  await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
  return dir;
}

describe('hostile configs are refused with exit 2, file:line:col and no output', () => {
  it('a billion-laughs config, through validate, plan and merge', async () => {
    const dir = await twoModels();
    writeConfig(dir, 'bomb.yml', BILLION_LAUGHS);
    const validate = await runAlloy(['validate', 'bomb.yml'], dir);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toMatch(/^bomb\.yml:6:\d+: error: the YAML holds more than 100000 values once its aliases/m);
    for (const args of [['plan', 'bomb.yml'], ['merge', 'bomb.yml', 'out']]) {
      const r = await runAlloy(args, dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/bomb\.yml:6:\d+: the YAML holds more than 100000 values .*write a plain config/);
    }
    expect(readdirSync(dir).sort()).toEqual(['base', 'bomb.yml', 'ft']);
  });

  it('a 100,000-alias list', async () => {
    const dir = tempDir();
    writeConfig(dir, 'aliases.yml', `${LINEAR}x: &x 1\ny: [${Array(100_000).fill('*x').join(', ')}]\n`);
    const r = await runAlloy(['validate', 'aliases.yml'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^aliases\.yml:1:1: error: the file is 400\d+ characters long, more than the 262144/m);
  });

  it('a file far past the size limit is refused from its size, without being read', async () => {
    const dir = tempDir();
    // Sparse: 2 GB that take no disk and would take seconds to read.
    writeFileSync(join(dir, 'huge.yml'), '');
    truncateSync(join(dir, 'huge.yml'), 2 ** 31);
    const validate = await runAlloy(['validate', 'huge.yml'], dir);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toContain('huge.yml:1:1: error: the file is 2147483648 bytes long, more than a config may have (262144 characters)');
    const merge = await runAlloy(['merge', 'huge.yml', 'out'], dir);
    expect(merge.code).toBe(2);
    expect(merge.stderr).toContain('huge.yml:1:1: the file is 2147483648 bytes long');
    const moe = await runAlloy(['moe', 'huge.yml', 'out'], dir);
    expect(moe.code).toBe(2);
    expect(moe.stderr).toContain('huge.yml:1:1: the file is 2147483648 bytes long');
    expect(readdirSync(dir)).toEqual(['huge.yml']);
  });

  it('weights that sum to 0 with normalize: validate refuses what merge would', async () => {
    const dir = await twoModels();
    writeConfig(dir, 'zero.yml', LINEAR.replace(/weight: 1/g, 'weight: 0'));
    const validate = await runAlloy(['validate', 'zero.yml'], dir);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toContain(
      'zero.yml:2:42: error: models[0].parameters.weight: linear: the weights sum to 0 (every weight is 0), so normalizing would divide by zero. Change the weights or set `normalize: false`.',
    );
    writeConfig(dir, 'cancel.yml', LINEAR.replace('weight: 1}}\n  - {model: ./ft, parameters: {weight: 1', 'weight: 1}}\n  - {model: ./ft, parameters: {weight: -1'));
    const cancel = await runAlloy(['merge', 'cancel.yml', 'out'], dir);
    expect(cancel.code).toBe(2);
    expect(cancel.stderr).toContain('models[0].parameters.weight: linear: the weights sum to 0, so normalizing would divide by zero. Change the weights or set `normalize: false`.');
    // Without normalizing, zero weights are a valid (if odd) merge.
    writeConfig(dir, 'plain.yml', `${LINEAR.replace(/weight: 1/g, 'weight: 0')}parameters: {normalize: false}\n`);
    expect((await runAlloy(['validate', 'plain.yml'], dir)).code).toBe(0);
  });
});

describe('absurd numbers are checked against the models before anything is allocated', () => {
  const slices = (end: number) =>
    'slices:\n  - sources:\n      - {model: ./base, layer_range: [0, 2]}\n      - {model: ./ft, layer_range: [0, 2]}\n' +
    `  - sources:\n      - {model: ./base, layer_range: [0, ${end}]}\n      - {model: ./ft, layer_range: [0, ${end}]}\nmerge_method: slerp\nbase_model: ./base\nparameters: {t: 0.5}\n`;

  it('layer_range [0, 100000000] is a config error with its YAML path and line, exit 2', async () => {
    const dir = await twoModels();
    writeConfig(dir, 'c.yml', slices(100_000_000));
    for (const args of [['validate', 'c.yml'], ['plan', 'c.yml'], ['merge', 'c.yml', 'out']]) {
      const r = await runAlloy(args, dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/c\.yml:6:38: (error: )?slices\[1\]\.sources\[0\]\.layer_range: layer_range \[0, 100000000\] goes past layer 100000/);
    }
    expect(readdirSync(dir).sort()).toEqual(['base', 'c.yml', 'ft']);
  });

  it('a layer_range past a 2-layer model is refused by the planner before it builds any list, exit 2', async () => {
    const dir = await twoModels();
    writeConfig(dir, 'c.yml', slices(90_000));
    for (const args of [['plan', 'c.yml'], ['merge', 'c.yml', 'out']]) {
      const r = await runAlloy(args, dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        'slices[1].sources[0].layer_range: layer_range [0, 90000] is outside model ./base, which has 2 layers: use 0 ≤ start ≤ end ≤ 2 (end is exclusive)',
      );
    }
    expect(readdirSync(dir).sort()).toEqual(['base', 'c.yml', 'ft']);
  });

  it('a config.json claiming 100,000,000 layers', async () => {
    const dir = await twoModels();
    const file = join(dir, 'ft', 'config.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), num_hidden_layers: 100_000_000 }));
    const r = await runAlloy(['merge', 'c.yml', 'out'], (writeConfig(dir, 'c.yml', LINEAR), dir));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config.json of model ./ft says it has 100000000 layers, but its weights hold only 21 tensors');
  });
});

describe('task arithmetic: a model whose tensor shape differs from the base', () => {
  const config = 'models:\n  - {model: ./ft, parameters: {weight: 1}}\n  - {model: ./other, parameters: {weight: 1}}\nbase_model: ./base\nmerge_method: task_arithmetic\n';

  it('is refused by default, naming the tensor and both shapes, before any weight is read', async () => {
    const dir = await twoModels();
    await makeTinyModel(join(dir, 'other'), { seed: 3, intermediateSize: 40 });
    writeConfig(dir, 'c.yml', config);
    const r = await runAlloy(['merge', 'c.yml', 'out'], dir);
    expect(r.code).toBe(2);
    // The first tensor in merge order that differs: layer 0's MLP (hidden 32, intermediate 48 vs 40).
    const match = /tensor (model\.layers\.0\.mlp\.(\w+)_proj\.weight) of model \.\/other has shape \[(\d+), (\d+)\], but the base model \.\/base has \[(\d+), (\d+)\]/.exec(r.stderr);
    expect(match, r.stderr).not.toBeNull();
    const [, , proj, a, b, c, d] = match!;
    expect([a, b, c, d].map(Number)).toEqual(proj === 'down' ? [32, 40, 32, 48] : [40, 32, 48, 32]);
    expect(r.stderr).toContain('pass --allow-crimes to merge anyway');
    expect(readdirSync(dir).sort()).toEqual(['base', 'c.yml', 'ft', 'other']);
  });

  it('is skipped with a warning under --allow-crimes, as mergekit does', async () => {
    const dir = await twoModels();
    await makeTinyModel(join(dir, 'other'), { seed: 3, intermediateSize: 40 });
    writeConfig(dir, 'c.yml', config);
    const r = await runAlloy(['merge', 'c.yml', 'out', '--allow-crimes', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    // Three MLP projections in each of the 2 layers.
    expect(r.stderr.match(/skipping model \.\/other because its shape/g)).toHaveLength(6);
    expect(existsSync(join(dir, 'out', 'model.safetensors'))).toBe(true);
  });
});

describe('model folders and files', () => {
  it('a missing config.json exits 2', async () => {
    const dir = await twoModels();
    unlinkSync(join(dir, 'ft', 'config.json'));
    writeConfig(dir, 'c.yml', LINEAR);
    const r = await runAlloy(['merge', 'c.yml', 'out'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Model \.\/ft has no config\.json \(looked in .*ft\)/);
  });

  it('a shard that is a named pipe is refused at once instead of hanging', async () => {
    const dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2, shards: 2 });
    const shard = readdirSync(join(dir, 'ft')).filter((f) => f.endsWith('.safetensors')).sort()[1];
    unlinkSync(join(dir, 'ft', shard));
    execFileSync('mkfifo', [join(dir, 'ft', shard)]);
    writeConfig(dir, 'c.yml', LINEAR);
    const r = await runAlloy(['merge', 'c.yml', 'out'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(dir, 'ft', shard)} is a named pipe, not a regular file`);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('terminal escape codes in a tensor name reach the terminal escaped', async () => {
    const dir = await twoModels();
    const header = JSON.stringify({ '\u001b]0;pwned\u0007\u001b[2Jx': { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } });
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    writeFileSync(join(dir, 'ft', 'model.safetensors'), Buffer.concat([prefix, Buffer.from(header), Buffer.alloc(1)]));
    writeConfig(dir, 'c.yml', LINEAR);
    const r = await runAlloy(['merge', 'c.yml', 'out'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('tensor "\\x1b]0;pwned\\x07\\x1b[2Jx": dtype "Q4" is not supported');
    expect(r.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
  });
});

describe('the output path is checked before any work', () => {
  it('refuses a symlink (even to an empty folder) and a file, exit 2, before reading the models', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'empty'));
    symlinkSync(join(dir, 'empty'), join(dir, 'link'));
    writeFileSync(join(dir, 'file'), 'x');
    // The models do not exist: the output path is refused first.
    writeConfig(dir, 'c.yml', LINEAR);
    const link = await runAlloy(['merge', 'c.yml', 'link'], dir);
    expect(link.code).toBe(2);
    expect(link.stderr).toContain(`the output path ${join(dir, 'link')} is a symbolic link`);
    const file = await runAlloy(['merge', 'c.yml', 'file'], dir);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain(`the output path ${join(dir, 'file')} exists and is not a folder`);
    const inside = await runAlloy(['merge', 'c.yml', 'file/sub/out'], dir);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain(`the output path ${join(dir, 'file/sub/out')} is inside something that is not a folder`);
    expect(readdirSync(dir).sort()).toEqual(['c.yml', 'empty', 'file', 'link']);
  });

  it('removes the temporary folder a dead run left behind, and keeps a live run\'s', async () => {
    const dir = await twoModels();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const stale = join(dir, `out.alloy-tmp-${dead}-0123456789ab`);
    const live = join(dir, `out.alloy-tmp-${process.pid}-0123456789ab`);
    const legacy = join(dir, 'out.alloy-tmp-0123456789ab');
    for (const folder of [stale, live, legacy]) {
      mkdirSync(folder);
      writeFileSync(join(folder, 'model-00001-of-00002.safetensors'), 'partial');
    }
    writeConfig(dir, 'c.yml', LINEAR);
    const r = await runAlloy(['merge', 'c.yml', 'out', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: removed ${stale}, left behind by an interrupted merge`);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(join(live, 'model-00001-of-00002.safetensors'))).toBe(true);
    expect(existsSync(legacy)).toBe(true);
    expect(existsSync(join(dir, 'out', 'model.safetensors'))).toBe(true);
  });

  it.skipIf(!existsSync('/sys') || process.platform !== 'linux')('a parent that cannot be created is named with the real reason, not ENOENT', async () => {
    const dir = await twoModels();
    writeConfig(dir, 'c.yml', LINEAR);
    const top = `/sys/alloy-test-${process.pid}`;
    let reason: string | undefined;
    try {
      mkdirSync(top);
      rmSync(top, { recursive: true });
    } catch (error) {
      reason = (error as NodeJS.ErrnoException).code;
    }
    // Only where /sys refuses new folders (read-only or not permitted), as on Linux.
    if (reason === undefined || reason === 'ENOENT') return;
    const r = await runAlloy(['merge', 'c.yml', `${top}/nested/out`, '--quiet'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot create the folder ${top}: `);
    expect(r.stderr).toContain(`(${reason}): choose an output path on a writable disk`);
    expect(r.stderr).not.toContain('ENOENT');
  });
});

describe('signals cancel the merge and remove the temporary folder', () => {
  const bin = resolve('bin/alloy.js');
  let dir: string;
  beforeAll(async () => {
    if (!existsSync(resolve('dist/cli/main.js'))) execFileSync('npm', ['run', 'build:cli'], { stdio: 'ignore' });
    dir = tempDir();
    // Big enough that the merge is still running when the signal arrives (checked below).
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1, hiddenSize: 256, intermediateSize: 1024, numLayers: 8, vocabSize: 4096, tokenizer: false });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2, tokenizer: false });
    writeConfig(dir, 'c.yml', LINEAR);
  }, 120_000);

  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
    it(`${signal}: exit 1, no output folder, no temporary folder`, async () => {
      const out = `out-${signal}`;
      const child = spawn(process.execPath, [bin, 'merge', 'c.yml', out, '--backend', 'cpu', '--memory', '64k', '--quiet'], { cwd: dir });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
      // Wait for the temporary folder to appear with a shard in it: the merge is under way.
      let started = false;
      while (!started && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 5));
        const temp = readdirSync(dir).find((f) => f.startsWith(`${out}.alloy-tmp-${child.pid}-`));
        started = temp !== undefined && readdirSync(join(dir, temp)).length > 0;
      }
      expect(started, 'the merge finished before the signal could be sent').toBe(true);
      child.kill(signal);
      const code = await exited;
      expect(code, stderr).toBe(1);
      expect(stderr).toMatch(/cancel/i);
      expect(readdirSync(dir).filter((f) => f.startsWith(out))).toEqual([]);
    });
  }
});
