import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend';
import type { ComputeBackend, HistogramTotals } from '../../src/backend';
import { TensorJobRunner } from '../../src/engine/tensor-job-runner';
import { findMethod, type MergeMethod } from '../../src/methods';
import type { TensorJob } from '../../src/plan/types';
import { decodeToF32, encodeFromF32 } from '../../src/storage';
import type { ByteSource, FloatDtype, NonFiniteTensor } from '../../src/storage';
import { NodeByteSource } from '../../src/storage/node-fs';

export interface ArrayInput {
  values: ArrayLike<number>;
  shape?: number[];
  params?: Record<string, number>;
  dtype?: FloatDtype;
}

export interface RunOptions {
  params?: Record<string, number>;
  baseIndex?: number;
  shape?: number[];
  dtype?: FloatDtype;
  isEmbed?: boolean;
  budgetBytes?: number;
  seed?: number;
  backend?: ComputeBackend;
  name?: string;
  /** Runs this method object instead of the registered one called `methodName`. */
  method?: MergeMethod;
  /**
   * Reads the inputs from files (NodeByteSource, whose descriptor a pool's workers read too), each
   * tensor after a few bytes of padding, instead of from memory.
   */
  files?: boolean;
  /** The job runner's waits (JobContext.onWait). */
  onWait?: (stage: 'read' | 'compute', ms: number) => void;
  /** Where the job takes its histogram totals from and gives them back to when it ends (JobContext.histograms). */
  histograms?: HistogramTotals;
}

/** Bytes ahead of each tensor in an input file (odd, so that no read is aligned by accident). */
const FILE_PADDING = 37;

function memorySource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.length,
    async read(offset, length) {
      if (offset + length > bytes.length) throw new Error(`read past end of ${name}`);
      return bytes.slice(offset, offset + length);
    },
  };
}

async function fileSources(dir: string, encoded: Uint8Array[]): Promise<ByteSource[]> {
  return Promise.all(
    encoded.map(async (bytes, i) => {
      const path = join(dir, `input${i}.bin`);
      await writeFile(path, Buffer.concat([Buffer.alloc(FILE_PADDING, 0xa5), bytes, Buffer.alloc(3, 0x5a)]));
      return NodeByteSource.open(path);
    }),
  );
}

/**
 * Runs one method on in-memory tensors through the real engine job runner and CPU backend
 * (or the given backend) and returns the decoded output with the warnings it raised.
 */
export async function runMethod(
  methodName: string,
  inputs: ArrayInput[],
  options: RunOptions = {},
): Promise<{ values: Float32Array; warnings: string[]; bytes: Uint8Array; nonFinite: NonFiniteTensor | null }> {
  const method = options.method ?? findMethod(methodName);
  if (!method) throw new Error(`no method ${methodName}`);
  const dtype = options.dtype ?? 'F32';
  const shape = options.shape ?? inputs[0].shape ?? [inputs[0].values.length];
  const numel = shape.reduce((a, b) => a * b, 1);
  const size = dtype === 'F32' ? 4 : 2;
  const encoded = inputs.map((input) => encodeFromF32(Float32Array.from(input.values), input.dtype ?? dtype));
  const offset = options.files ? FILE_PADDING : 0;
  const dir = options.files ? await mkdtemp(join(tmpdir(), 'alloy-run-method-')) : null;
  const sources = dir ? await fileSources(dir, encoded) : encoded.map((bytes, i) => memorySource(`input${i}`, bytes));
  const job: TensorJob = {
    name: options.name ?? 'model.layers.0.mlp.up_proj.weight',
    shape,
    dtype,
    method: methodName,
    baseIndex: options.baseIndex ?? -1,
    params: options.params ?? {},
    isEmbed: options.isEmbed ?? false,
    byteLength: numel * size,
    inputs: inputs.map((input, i) => ({
      model: `m${i}`,
      params: input.params ?? {},
      tensor: {
        name: 'x',
        dtype: input.dtype ?? dtype,
        shape: input.shape ?? shape,
        file: `input${i}`,
        offset,
        byteLength: encoded[i].length,
      },
    })),
  };
  const chunks: Uint8Array[] = [];
  const warnings: string[] = [];
  const runner = new TensorJobRunner(job, {
    backend: options.backend ?? new CpuBackend(),
    source: async (model) => sources[Number(model.slice(1))],
    seed: options.seed ?? 1234,
    budgetBytes: options.budgetBytes ?? 1 << 24,
    wholeRows: method.wholeRows,
    warn: (m) => warnings.push(m),
    onRead: () => undefined,
    onWait: options.onWait,
    histograms: options.histograms,
    onOutput: () => undefined,
    write: async (b) => {
      chunks.push(b.slice());
    },
  });
  try {
    await method.merge(runner);
  } finally {
    runner.release();
    await Promise.all(sources.map((s) => s.close?.()));
    if (dir) await rm(dir, { recursive: true, force: true });
  }
  if (!runner.complete) throw new Error('incomplete output');
  const bytes = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    bytes.set(c, o);
    o += c.length;
  }
  return { values: decodeToF32(bytes, dtype), warnings, bytes, nonFinite: runner.nonFinite() };
}
