import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_BUDGET_BYTES } from '../src/engine';
import { parseShardSize } from '../src/storage';
import { writeBenchModel, writeBenchTokenizer, type BenchModelSpec } from './generate-models';

/**
 * `npm run bench`: merges three generated bf16 Llama-layout models (≥ 1 GB of input in total) with
 * each method, in a fresh process per merge, and reports MB/s of input and peak RSS as JSON
 * (printed and written to .bench/results.json). The CPU backend runs twice: on one thread and on
 * all cores (the worker pool; peak RSS counts the workers, which are threads of the process).
 * With `--backend webgpu` every method also runs on
 * the CPU backend, so both figures sit side by side, and the WebGPU rows add the adapter and the
 * GPU memory high-water mark, checked against the working-memory budget.
 *
 * `lora` (in --methods, on by default) extracts a rank-32 LoRA from ft1 − base (MB/s, peak RSS) and
 * times a linear merge with `base+lora32` against the same merge with `base` (CPU backend).
 *
 * Options: --backend cpu|webgpu (default cpu), --methods a,b,c, --scale N (model size multiplier),
 * --memory SIZE (working-memory budget passed to `alloy merge`, default the CLI's 128M),
 * --dir DIR (models and results, default .bench), --threads N (the "all cores" run's thread
 * count, default os.availableParallelism()), --forward on|off|only (default on).
 *
 * The forward-pass rows (src/model/, what `alloy eval` and MoE gates run): prompt tokens/s on the
 * CPU (and, with --backend webgpu, on WebGPU, with its adapter and GPU memory high-water mark) for 4 prompts × 32 tokens through a generated bf16 Llama-layout model (hidden 1024, 8192
 * vocabulary, ≈ 68 M parameters at 4 layers) at two layer counts, each in a fresh process, with
 * peak RSS: the weights are streamed, so peak memory must not grow with the number of layers.
 *
 * The `alloy moe` row (--moe on|off|only, default on): a Mixtral from 4 experts, fine-tunes of the
 * 4-layer forward-pass model, with gate_mode hidden (8 prompts through the base model) and bf16
 * output; seconds, MB/s of input read and peak RSS (tensors are streamed, one block at a time).
 */
const argv = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : fallback;
};
const backend = option('backend', 'cpu');
if (backend !== 'cpu' && backend !== 'webgpu') throw new Error(`--backend must be cpu or webgpu, not ${backend}`);
const allThreads = Number(option('threads', String(availableParallelism())));
/** What each method runs on: the CPU backend on one thread and on all cores, then WebGPU when asked. */
const runs: { backend: 'cpu' | 'webgpu'; threads: number | null }[] = [
  { backend: 'cpu', threads: 1 },
  ...(allThreads > 1 ? [{ backend: 'cpu' as const, threads: allThreads }] : []),
  ...(backend === 'webgpu' ? [{ backend: 'webgpu' as const, threads: null }] : []),
];
const memory = option('memory', '');
// Without a GPU, Dawn finds SwiftShader's Vulkan driver only through VK_ICD_FILENAMES (docs/testing.md §1).
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (backend === 'webgpu' && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
}
const scale = Number(option('scale', '1'));
const root = resolve(option('dir', '.bench'));
const modelsDir = join(root, 'models');
mkdirSync(modelsDir, { recursive: true });

const spec: BenchModelSpec = { hidden: 2048, intermediate: 5632, layers: Math.max(1, Math.round(3 * scale)), vocab: 8192 };

const CONFIGS: Record<string, string> = {
  linear: `models:
  - {model: base, parameters: {weight: 0.4}}
  - {model: ft1, parameters: {weight: 0.3}}
  - {model: ft2, parameters: {weight: 0.3}}
merge_method: linear
dtype: bfloat16
`,
  slerp: `models:
  - model: base
  - model: ft1
merge_method: slerp
base_model: base
parameters: {t: 0.4}
dtype: bfloat16
`,
  task_arithmetic: `models:
  - {model: ft1, parameters: {weight: 0.5}}
  - {model: ft2, parameters: {weight: 0.5}}
merge_method: task_arithmetic
base_model: base
dtype: bfloat16
`,
  ties: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5}}
merge_method: ties
base_model: base
dtype: bfloat16
`,
  dare_ties: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5}}
merge_method: dare_ties
base_model: base
dtype: bfloat16
`,
  dare_linear: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5}}
merge_method: dare_linear
base_model: base
dtype: bfloat16
`,
  breadcrumbs: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5, gamma: 0.01}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5, gamma: 0.01}}
merge_method: breadcrumbs
base_model: base
dtype: bfloat16
`,
  breadcrumbs_ties: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5, gamma: 0.01}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5, gamma: 0.01}}
merge_method: breadcrumbs_ties
base_model: base
dtype: bfloat16
`,
  della: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}}
merge_method: della
base_model: base
dtype: bfloat16
`,
  della_linear: `models:
  - {model: ft1, parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}}
  - {model: ft2, parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}}
merge_method: della_linear
base_model: base
dtype: bfloat16
`,
  nuslerp: `models:
  - {model: ft1, parameters: {weight: 0.6}}
  - {model: ft2, parameters: {weight: 0.4}}
merge_method: nuslerp
base_model: base
dtype: bfloat16
`,
  multislerp: `models:
  - {model: ft1, parameters: {weight: 0.6}}
  - {model: ft2, parameters: {weight: 0.4}}
merge_method: multislerp
base_model: base
dtype: bfloat16
`,
  karcher: `models:
  - model: base
  - model: ft1
  - model: ft2
merge_method: karcher
dtype: bfloat16
`,
  model_stock: `models:
  - model: ft1
  - model: ft2
merge_method: model_stock
base_model: base
dtype: bfloat16
`,
  nearswap: `models:
  - model: ft1
merge_method: nearswap
base_model: base
parameters: {t: 0.001}
dtype: bfloat16
`,
  arcee_fusion: `models:
  - model: base
  - model: ft1
merge_method: arcee_fusion
base_model: base
dtype: bfloat16
`,
  sce: `models:
  - model: ft1
  - model: ft2
merge_method: sce
base_model: base
parameters: {select_topk: 0.5}
dtype: bfloat16
`,
  ram: `models:
  - model: ft1
  - model: ft2
merge_method: ram
base_model: base
dtype: bfloat16
`,
  ramplus_tl: `models:
  - model: ft1
  - model: ft2
merge_method: ramplus_tl
base_model: base
dtype: bfloat16
`,
  passthrough: `slices:
  - sources: [{model: base, layer_range: [0, ${spec.layers}]}]
  - sources: [{model: ft1, layer_range: [0, ${spec.layers}]}]
merge_method: passthrough
dtype: bfloat16
`,
};
const forwardMode = option('forward', 'on');
if (!['on', 'off', 'only'].includes(forwardMode)) throw new Error(`--forward must be on, off or only, not ${forwardMode}`);
const moeMode = option('moe', 'on');
if (!['on', 'off', 'only'].includes(moeMode)) throw new Error(`--moe must be on, off or only, not ${moeMode}`);
/** Not a merge method: extraction of a rank-32 LoRA (ft1 − base), then a linear merge with and without `base+lora32`. */
const LORA_BENCH = 'lora';
const methods = forwardMode === 'only' || moeMode === 'only' ? [] : option('methods', [...Object.keys(CONFIGS), LORA_BENCH].join(',')).split(',');

const sizes =
  methods.length === 0
    ? [0]
    : [
        await writeBenchModel(join(modelsDir, 'base'), spec, 1),
        await writeBenchModel(join(modelsDir, 'ft1'), spec, 2, 1),
        await writeBenchModel(join(modelsDir, 'ft2'), spec, 3, 1),
      ];
if (methods.length > 0) process.stderr.write(`bench models: 3 × ${(sizes[0] / 1e6).toFixed(0)} MB in ${modelsDir}\n`);

/** The budget `alloy merge` uses: --memory, else the engine's default (128 MiB). */
const budgetBytes = memory ? parseShardSize(memory) : DEFAULT_BUDGET_BYTES;

interface Run {
  code: number;
  seconds: number;
  peakRssBytes: number;
  backend: string | null;
  adapter: string | null;
  gpuHighWaterBytes: number | null;
  gpuQueueBusyMs: number | null;
  stderr: string;
}

/** Runs one `alloy` command in a fresh process (bench/merge-once.ts) in the models folder. */
function runOnce(args: string[]): Run {
  const raw = execFileSync(process.execPath, [resolve('dist/bench/merge-once.js'), ...args], { cwd: modelsDir, encoding: 'utf8', maxBuffer: 1 << 24 });
  const run = JSON.parse(raw.trim().split('\n').pop()!) as Run;
  if (run.code !== 0) throw new Error(`alloy ${args.join(' ')} failed: ${run.stderr}`);
  return run;
}

const results: Record<string, unknown>[] = [];
for (const method of methods) {
  if (method === LORA_BENCH) continue;
  const config = CONFIGS[method];
  if (!config) throw new Error(`unknown bench method ${method}`);
  writeFileSync(join(modelsDir, `${method}.yml`), config);
  // Every distinct model the config names is read once in full.
  const models = new Set([...config.matchAll(/model: (base|ft1|ft2)\b/g)].map((m) => m[1]));
  const inputBytes = models.size * sizes[0];
  const cpuSeconds: number[] = [];
  for (const { backend: name, threads } of runs) {
    const out = join(modelsDir, `out-${method}-${name}`);
    rmSync(out, { recursive: true, force: true });
    const flags = ['--backend', name, '--quiet', '--random-seed', '1', ...(memory ? ['--memory', memory] : []), ...(threads ? ['--threads', String(threads)] : [])];
    const raw = execFileSync(process.execPath, [resolve('dist/bench/merge-once.js'), 'merge', `${method}.yml`, out, ...flags], {
      cwd: modelsDir,
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    const run = JSON.parse(raw.trim().split('\n').pop()!) as Run;
    if (run.code !== 0) throw new Error(`${method} merge on ${name} failed: ${run.stderr}`);
    if (name === 'cpu') cpuSeconds.push(run.seconds);
    results.push({
      method,
      backend: name,
      ...(threads ? { threads } : {}),
      inputBytes,
      seconds: Number(run.seconds.toFixed(3)),
      inputMBps: Number((inputBytes / 1e6 / run.seconds).toFixed(1)),
      peakRssMB: Number((run.peakRssBytes / 1e6).toFixed(1)),
      ...(name === 'webgpu'
        ? {
            adapter: run.adapter,
            gpuHighWaterMB: run.gpuHighWaterBytes === null ? null : Number((run.gpuHighWaterBytes / 1e6).toFixed(1)),
            budgetMB: Number((budgetBytes / 1e6).toFixed(1)),
            gpuWithinBudget: run.gpuHighWaterBytes !== null && run.gpuHighWaterBytes <= budgetBytes,
            // Share of the merge's wall time the GPU queue had work: low means the GPU waits for the host.
            gpuQueueBusy: run.gpuQueueBusyMs === null ? null : Number((run.gpuQueueBusyMs / 1000 / run.seconds).toFixed(2)),
            speedupOverCpu: cpuSeconds.length > 0 ? Number((cpuSeconds[0] / run.seconds).toFixed(2)) : null,
          }
        : threads && threads > 1 && cpuSeconds.length > 1
          ? { speedupOverOneThread: Number((cpuSeconds[0] / run.seconds).toFixed(2)) }
          : {}),
    });
    rmSync(out, { recursive: true, force: true });
    process.stderr.write(`${method}: ${JSON.stringify(results[results.length - 1])}\n`);
  }
}
if (methods.includes(LORA_BENCH)) {
  // Extraction: both models' linear weights are read (ΔW held in f32 when it fits --memory, 256M).
  const adapter = join(modelsDir, 'lora32');
  rmSync(adapter, { recursive: true, force: true });
  const extract = runOnce(['extract-lora', '--model', 'ft1', '--base-model', 'base', '--out-path', 'lora32', '--max-rank', '32', '--quiet']);
  results.push({
    method: 'extract_lora_r32',
    backend: 'cpu',
    inputBytes: 2 * sizes[0],
    seconds: Number(extract.seconds.toFixed(3)),
    inputMBps: Number(((2 * sizes[0]) / 1e6 / extract.seconds).toFixed(1)),
    peakRssMB: Number((extract.peakRssBytes / 1e6).toFixed(1)),
  });
  process.stderr.write(`extract_lora_r32: ${JSON.stringify(results[results.length - 1])}\n`);
  // The same linear merge without and with the adapter applied on the fly to the base.
  const withLora = `models:\n  - {model: base+lora32, parameters: {weight: 0.5}}\n  - {model: ft2, parameters: {weight: 0.5}}\nmerge_method: linear\ndtype: bfloat16\n`;
  writeFileSync(join(modelsDir, 'lora-off.yml'), withLora.replace('base+lora32', 'base'));
  writeFileSync(join(modelsDir, 'lora-on.yml'), withLora);
  const seconds: Record<string, number> = {};
  for (const name of ['lora-off', 'lora-on']) {
    const out = join(modelsDir, `out-${name}`);
    rmSync(out, { recursive: true, force: true });
    const run = runOnce(['merge', `${name}.yml`, out, '--backend', 'cpu', '--quiet', ...(memory ? ['--memory', memory] : [])]);
    seconds[name] = run.seconds;
    results.push({
      method: name === 'lora-on' ? 'linear_with_lora' : 'linear_without_lora',
      backend: 'cpu',
      inputBytes: 2 * sizes[0],
      seconds: Number(run.seconds.toFixed(3)),
      inputMBps: Number(((2 * sizes[0]) / 1e6 / run.seconds).toFixed(1)),
      peakRssMB: Number((run.peakRssBytes / 1e6).toFixed(1)),
      ...(name === 'lora-on' ? { overheadOverWithout: Number((run.seconds / seconds['lora-off']).toFixed(2)) } : {}),
    });
    rmSync(out, { recursive: true, force: true });
    process.stderr.write(`${name}: ${JSON.stringify(results[results.length - 1])}\n`);
  }
}
const FORWARD_PROMPTS = 4;
const FORWARD_TOKENS = 32;
const forward = [];
if (forwardMode !== 'off' && moeMode !== 'only') {
  for (const layers of [4, 8]) {
    const forwardSpec: BenchModelSpec = { hidden: 1024, intermediate: 2816, layers, vocab: 8192 };
    const dir = join(modelsDir, `forward-${layers}`);
    const bytes = await writeBenchModel(dir, forwardSpec, 7);
    for (const forwardBackend of backend === 'webgpu' ? ['cpu', 'webgpu'] : ['cpu']) {
      const raw = execFileSync(process.execPath, [resolve('dist/bench/forward-once.js'), dir, String(FORWARD_PROMPTS), String(FORWARD_TOKENS), forwardBackend], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      const run = JSON.parse(raw.trim().split('\n').pop()!) as {
        seconds: number;
        cpuSeconds: number;
        promptTokens: number;
        peakRssBytes: number;
        adapter?: string;
        gpuHighWaterBytes?: number;
      };
      forward.push({
        backend: forwardBackend,
        ...(run.adapter ? { adapter: run.adapter, gpuHighWaterMB: Number(((run.gpuHighWaterBytes ?? 0) / 1e6).toFixed(1)) } : {}),
        layers,
        modelMB: Number((bytes / 1e6).toFixed(1)),
        parametersM: Number((bytes / 2 / 1e6).toFixed(1)),
        promptTokens: run.promptTokens,
        seconds: Number(run.seconds.toFixed(2)),
        tokensPerSecond: Number((run.promptTokens / run.seconds).toFixed(1)),
        tokensPerCpuSecond: Number((run.promptTokens / run.cpuSeconds).toFixed(1)),
        peakRssMB: Number((run.peakRssBytes / 1e6).toFixed(1)),
      });
      process.stderr.write(`forward pass: ${JSON.stringify(forward[forward.length - 1])}\n`);
    }
  }
}
const moe = [];
if (moeMode !== 'off' && forwardMode !== 'only') {
  const moeSpec: BenchModelSpec = { hidden: 1024, intermediate: 2816, layers: 4, vocab: 8192 };
  const baseBytes = await writeBenchModel(join(modelsDir, 'moe-base'), moeSpec, 7);
  writeBenchTokenizer(join(modelsDir, 'moe-base'));
  const topics = [['write a poem about the sea', 'a sonnet on autumn'], ['solve for x', 'what is seven times six?'], ['translate into french', 'say hello in spanish'], ['summarize this article', 'the key points are']];
  for (let e = 0; e < 4; e++) await writeBenchModel(join(modelsDir, `moe-ex${e}`), moeSpec, 20 + e, 7);
  const yaml = `base_model: moe-base\ngate_mode: hidden\ndtype: bfloat16\nexperts:\n${topics
    .map((prompts, e) => `  - source_model: moe-ex${e}\n    positive_prompts: [${prompts.map((p) => JSON.stringify(p)).join(', ')}]\n`)
    .join('')}`;
  writeFileSync(join(modelsDir, 'moe.yml'), yaml);
  const out = join(modelsDir, 'out-moe');
  rmSync(out, { recursive: true, force: true });
  const run = runOnce(['moe', 'moe.yml', out, '--quiet', '--random-seed', '1']);
  // Read: the base's weights once for the gates plus its non-MLP tensors, and each expert's MLPs.
  const mlpBytes = moeSpec.layers * 3 * moeSpec.hidden * moeSpec.intermediate * 2;
  const inputBytes = 2 * baseBytes - mlpBytes + 4 * mlpBytes;
  moe.push({
    method: 'moe_4_experts_hidden',
    backend: 'cpu',
    experts: 4,
    layers: moeSpec.layers,
    inputBytes,
    seconds: Number(run.seconds.toFixed(3)),
    inputMBps: Number((inputBytes / 1e6 / run.seconds).toFixed(1)),
    peakRssMB: Number((run.peakRssBytes / 1e6).toFixed(1)),
  });
  rmSync(out, { recursive: true, force: true });
  process.stderr.write(`alloy moe: ${JSON.stringify(moe[moe.length - 1])}\n`);
}
const report = { date: new Date().toISOString(), node: process.version, spec, budgetBytes, results, forward, moe };
writeFileSync(join(root, 'results.json'), JSON.stringify(report, null, 2));
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
