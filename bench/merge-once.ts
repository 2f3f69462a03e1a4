import type { ComputeBackend } from '../src/backend';
import { runCli } from '../src/cli/main';

/**
 * Child process of the benchmark: runs one CLI merge and prints its own peak RSS (and, on the
 * WebGPU backend, the adapter, the GPU memory high-water mark and how long the GPU queue had
 * work), so every measurement starts
 * from a fresh process. argv: the `alloy` arguments.
 */
interface GpuStats {
  readonly memory?: { readonly highWaterBytes: number };
  readonly queueBusyMs?: number;
  readonly info?: { readonly description: string; readonly isSoftware: boolean };
}

const args = process.argv.slice(2);
const started = performance.now();
let stderr = '';
let backend: (ComputeBackend & GpuStats) | null = null;
const code = await runCli(args, {
  stdout: () => undefined,
  stderr: (t) => (stderr += t),
  cwd: process.cwd(),
  isTTY: false,
  columns: 80,
  onBackend: (b) => (backend = b as ComputeBackend & GpuStats),
});
const seconds = (performance.now() - started) / 1000;
const used = backend as (ComputeBackend & GpuStats) | null;
process.stdout.write(
  JSON.stringify({
    code,
    seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    backend: used?.name ?? null,
    adapter: used?.info ? `${used.info.description}${used.info.isSoftware ? ' (software)' : ''}` : null,
    gpuHighWaterBytes: used?.memory?.highWaterBytes ?? null,
    gpuQueueBusyMs: used?.queueBusyMs ?? null,
    stderr,
  }) + '\n',
);
