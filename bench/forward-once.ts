import { createNodeWebGpuBackend } from '../src/gpu/node';
import { ForwardModel } from '../src/model';
import { nodeModelFolder } from '../src/storage/node-fs';

/**
 * Child process of the benchmark's forward-pass measurement: runs a batch of prompts through one
 * model folder on the CPU or WebGPU (log p of every next token, as `alloy eval` does) and prints
 * the wall and CPU time, prompt tokens/s and its own peak RSS (and GPU memory), from a fresh process.
 * argv: MODEL_DIR PROMPTS TOKENS_PER_PROMPT [cpu|webgpu]
 */
const [dir, promptsArg, tokensArg, backendArg = 'cpu'] = process.argv.slice(2);
const prompts = Number(promptsArg);
const tokens = Number(tokensArg);
const gpu = backendArg === 'webgpu' ? await createNodeWebGpuBackend() : null;
const model = await ForwardModel.open(nodeModelFolder(dir, dir), gpu ? { matrix: gpu.matrix } : {});
const vocab = model.spec.vocab;
// Deterministic ids spread over the vocabulary.
const sequences = Array.from({ length: prompts }, (_, b) => Array.from({ length: tokens }, (_, t) => (b * 7919 + t * 104729 + 1) % vocab));
const targets = sequences.map((seq) => seq.map((_, j) => (j + 1 < seq.length ? seq[j + 1] : -1)));
const rssBefore = process.memoryUsage().rss;
const cpuBefore = process.cpuUsage();
const started = performance.now();
await model.run(sequences, { targets });
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
await model.close();
const gpuMemory = gpu?.memory.highWaterBytes;
const adapter = gpu?.info.description;
await gpu?.dispose();
process.stdout.write(
  JSON.stringify({
    backend: backendArg,
    adapter,
    gpuHighWaterBytes: gpuMemory,
    seconds,
    promptTokens: prompts * tokens,
    tokensPerSecond: (prompts * tokens) / seconds,
    // On a shared machine wall time includes waiting for a core; CPU time does not.
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    rssBeforeBytes: rssBefore,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  }) + '\n',
);
