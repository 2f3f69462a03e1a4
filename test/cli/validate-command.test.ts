import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CORPUS_DIR, readCorpus } from '../config/corpus';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

const VALID = readCorpus('valid');
const INVALID = readCorpus('invalid');

describe('alloy validate', () => {
  it('exits 0 for every valid corpus file, printing one verdict per file and warnings on stderr', async () => {
    const files = VALID.map((c) => relative(CORPUS_DIR, c.file));
    const r = await runAlloy(['validate', ...files], CORPUS_DIR);
    expect(r.code, r.stderr).toBe(0);
    const verdicts = r.stdout.trim().split('\n');
    expect(verdicts).toHaveLength(files.length);
    for (const [i, c] of VALID.entries()) {
      expect(verdicts[i]).toMatch(new RegExp(`^${files[i].replace(/[.]/g, '\\.')}: valid ${c.kind === 'moe' ? 'mergekit-moe' : 'mergekit'} config`));
    }
    expect(r.stderr).not.toMatch(/: error: /);
    expect(r.stderr).toContain('valid/unknown-keys.yaml:6:5: warning: models[0].paramters: unknown key');
  });

  it.each(INVALID.map((c) => [c.name, c] as const))('exits 2 for %s, naming file, line:column and YAML path', async (_name, c) => {
    const file = relative(CORPUS_DIR, c.file);
    const r = await runAlloy(['validate', file], CORPUS_DIR);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}: invalid \\(\\d+ errors?`));
    for (const e of c.expected.filter((x) => x.severity === 'error')) {
      const prefix = `${file}:${e.line}:${e.column}: error: ${e.path === '' ? '' : `${e.path}: `}`;
      const line = r.stderr.split('\n').find((l) => l.startsWith(prefix) && l.includes(e.fragment));
      expect(line, `missing "${prefix}… ${e.fragment}" in:\n${r.stderr}`).toBeDefined();
    }
  });

  it('exits 2 when any one of several files is invalid, and checks all of them', async () => {
    const r = await runAlloy(['validate', 'valid/linear-soup.yaml', 'invalid/dtype-shorthand.yaml', 'valid/moe-clown-car.yaml'], CORPUS_DIR);
    expect(r.code).toBe(2);
    expect(r.stdout.trim().split('\n')).toEqual([
      'valid/linear-soup.yaml: valid mergekit config',
      'invalid/dtype-shorthand.yaml: invalid (2 errors)',
      'valid/moe-clown-car.yaml: valid mergekit-moe config (build it with alloy moe)',
    ]);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^invalid\/dtype-shorthand\.yaml:7:8: error: dtype: unknown dtype 'bf16': write bfloat16/),
      expect.stringMatching(/^invalid\/dtype-shorthand\.yaml:8:12: error: out_dtype: unknown dtype 'fp16': write float16/),
    ]);
  });

  it('--quiet prints errors only; --json prints the results', async () => {
    const quiet = await runAlloy(['validate', '--quiet', 'valid/quoted-numbers.yaml', 'invalid/slerp-missing-t.yaml'], CORPUS_DIR);
    expect(quiet.code).toBe(2);
    expect(quiet.stdout).toBe('');
    expect(quiet.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^invalid\/slerp-missing-t\.yaml:11:3: error: parameters\.t: /)]);

    const json = await runAlloy(['validate', '--json', 'valid/quoted-numbers.yaml', 'invalid/moe-missing-base.yaml'], CORPUS_DIR);
    expect(json.code).toBe(2);
    expect(json.stderr).toBe('');
    const results = JSON.parse(json.stdout);
    expect(results).toEqual([
      { ok: true, kind: 'merge', file: 'valid/quoted-numbers.yaml', issues: [expect.objectContaining({ severity: 'warning', line: 7 }), expect.objectContaining({ line: 10 })] },
      {
        ok: false,
        kind: 'moe',
        file: 'invalid/moe-missing-base.yaml',
        issues: [{ path: 'base_model', line: 3, column: 1, severity: 'error', message: expect.stringContaining('base_model is required') }],
      },
    ]);
  });

  it('reads no model files: models that do not exist are fine', async () => {
    const dir = tempDir();
    writeConfig(dir, 'c.yml', 'models:\n  - model: ./not/here\n    parameters: {weight: 1}\nmerge_method: linear\n');
    const r = await runAlloy(['validate', 'c.yml'], dir);
    expect(r).toEqual({ code: 0, stdout: 'c.yml: valid mergekit config\n', stderr: '' });
  });

  it('a missing file is an error (exit 2); no file at all is a usage error', async () => {
    const dir = tempDir();
    const missing = await runAlloy(['validate', 'nope.yml'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('nope.yml: error: cannot read the file: no such file\n');
    const usage = await runAlloy(['validate'], dir);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^alloy: validate takes one or more config files/);
    expect((await runAlloy(['validate', '--strict', 'x.yml'], dir)).code).toBe(2);
  });

  it('accepts a mergekit-moe config, while alloy merge says MoE merging is not supported yet', async () => {
    const validate = await runAlloy(['validate', 'valid/moe-qwen-shared.yaml'], CORPUS_DIR);
    expect(validate.code).toBe(0);
    const dir = tempDir();
    writeFileSync(join(dir, 'moe.yml'), VALID.find((c) => c.name === 'moe-clown-car.yaml')!.text);
    for (const command of [['merge', 'moe.yml', 'out'], ['plan', 'moe.yml']]) {
      const r = await runAlloy(command, dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^alloy: cannot merge moe\.yml with Alloy yet:\nmoe\.yml:\d+:\d+: experts: this is a mergekit-moe config .*build it with `alloy moe CONFIG OUT_DIR`/);
    }
  });
});

describe('the bundled CLI (as `npx alloy` runs it)', () => {
  let main: string;
  beforeAll(() => {
    // Built into a folder of its own, so that other tests using dist/ are not disturbed.
    const out = mkdtempSync(join(tmpdir(), 'alloy-cli-build-'));
    execFileSync('npx', ['vite', 'build', '--config', 'vite.cli.config.ts', '--outDir', out, '--emptyOutDir', '--logLevel', 'error'], { stdio: 'ignore' });
    main = join(out, 'main.js');
  }, 120_000);

  const alloy = (args: string[], cwd: string) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', `const { runCli } = await import(${JSON.stringify(main)}); process.exitCode = await runCli(process.argv.slice(1));`, ...args], {
      cwd,
      encoding: 'utf8',
    });

  it('validates the whole corpus: 0 for valid files, 2 for each invalid one', () => {
    const valid = alloy(['validate', ...VALID.map((c) => c.file)], resolve('.'));
    expect(valid.status, valid.stderr).toBe(0);
    for (const c of INVALID) {
      const r = alloy(['validate', c.file], resolve('.'));
      expect(r.status, `${c.name}\n${r.stdout}${r.stderr}`).toBe(2);
      const first = c.expected.find((e) => e.severity === 'error')!;
      expect(r.stderr).toContain(`${c.file}:${first.line}:${first.column}: error: `);
    }
  });

  it('prints the methods', () => {
    const r = alloy(['methods', '--json'], resolve('.'));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).length).toBeGreaterThanOrEqual(5);
  });
});
