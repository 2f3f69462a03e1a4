import { decodeToF32, dtypeSize, encodeFromF32 } from '../storage/dtype';
import { SafetensorsStreamWriter, type SafetensorsEntry } from '../storage/safetensors-writer';
import type { ByteSource, FloatDtype, OutputFolder, TensorInfo } from '../storage/types';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './adapter-config';
import type { ExtractAction, ExtractPlan } from './extract-plan';
import { factorize, type FactorizeOptions } from './factorize';
import { randomizedSvd } from './randomized-svd';
import { relativeError } from './reconstruction-error';
import type { RowBlocks } from './row-blocks';

export interface ExtractRunOptions extends FactorizeOptions {
  readonly seed: number;
  /** Extra sketch directions beyond the rank (10). */
  readonly oversample: number;
  /** Power iterations of the randomized SVD (2). */
  readonly powerIterations: number;
  /** Working memory per tensor: ΔW is held in f32 when it fits, else re-read on every pass. */
  readonly memoryBytes: number;
  /** base_model_name_or_path in adapter_config.json. */
  readonly baseModelName: string;
  /** Written into the adapter's README.md. */
  readonly fineTuneName: string;
  readonly invocation?: string;
  readonly signal?: AbortSignal;
  readonly onModule?: (report: ModuleReport, done: number, total: number) => void;
}

export interface ModuleReport {
  readonly module: string;
  readonly shape: readonly number[];
  readonly rank: number;
  /** ‖ΔW − B·A‖_F / ‖ΔW‖_F with the factors as written. */
  readonly relativeError: number;
}

export interface ExtractReport {
  readonly modules: readonly ModuleReport[];
  readonly saved: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface ExtractSources {
  readonly base: (file: string) => Promise<ByteSource>;
  readonly ft: (file: string) => Promise<ByteSource>;
}

export class ExtractCancelledError extends Error {
  constructor() {
    super('extraction cancelled');
    this.name = 'ExtractCancelledError';
  }
}

/**
 * Extracts a PEFT LoRA adapter (docs/lora.md §2): for each planned module, a randomized SVD of
 * ΔW = W_ft − W_base streamed by row blocks, truncated to its rank, with the relative Frobenius
 * error measured on the factors as stored; modules_to_save tensors are copied from the
 * fine-tune. The adapter folder appears only when everything succeeded.
 */
export async function extractLora(plan: ExtractPlan, sources: ExtractSources, output: OutputFolder, options: ExtractRunOptions): Promise<ExtractReport> {
  let bytesRead = 0;
  const loras = plan.actions.filter((a): a is Extract<ExtractAction, { kind: 'lora' }> => a.kind === 'lora');
  const results = new Map<string, { a: Uint8Array; b: Uint8Array; rank: number; dtype: FloatDtype; aShape: number[]; bShape: number[] }>();
  const modules: ModuleReport[] = [];
  try {
    for (const action of loras) {
      if (options.signal?.aborted) throw new ExtractCancelledError();
      const [m, n] = action.ft.shape;
      const blocks = await deltaBlocks(action, sources, options.memoryBytes, (b) => (bytesRead += b));
      const svd = await randomizedSvd(blocks, {
        k: Math.min(action.maxRank + options.oversample, m, n),
        powerIterations: options.powerIterations,
        seed: options.seed,
        label: action.module,
        onPass: async () => {
          await new Promise((resolve) => setTimeout(resolve, 0));
          if (options.signal?.aborted) throw new ExtractCancelledError();
        },
      });
      const factors = factorize(svd, { ...options, maxRank: action.maxRank });
      const dtype = action.ft.dtype as FloatDtype;
      // Round to the stored dtype first: the error reported is that of the adapter as written.
      const aBytes = encodeFromF32(factors.a, dtype);
      const bBytes = encodeFromF32(factors.b, dtype);
      const error = await relativeError(blocks, decodeToF32(aBytes, dtype), decodeToF32(bBytes, dtype), factors.rank);
      const r = factors.rank;
      const stored = action.embedding
        ? // nn.Embedding: PEFT's lora_embedding_A is [r, rows] = Bᵀ, lora_embedding_B is [cols, r] = Aᵀ.
          { a: encodeFromF32(transpose(decodeToF32(bBytes, dtype), m, r), dtype), b: encodeFromF32(transpose(decodeToF32(aBytes, dtype), r, n), dtype), aShape: [r, m], bShape: [n, r] }
        : { a: aBytes, b: bBytes, aShape: [r, n], bShape: [m, r] };
      results.set(action.module, { ...stored, rank: r, dtype });
      const report = { module: action.module, shape: [m, n], rank: r, relativeError: error };
      modules.push(report);
      options.onModule?.(report, modules.length, loras.length);
    }

    const rankOf = new Map([...results].map(([module, r]) => [module, r.rank]));
    const maxRank = Math.max(1, ...rankOf.values());
    const entries: (SafetensorsEntry & { bytes?: Uint8Array; copy?: TensorInfo })[] = [];
    for (const action of plan.actions) {
      if (action.kind === 'save') {
        entries.push({ name: `base_model.model.${action.ft.name}`, dtype: action.ft.dtype, shape: action.ft.shape, byteLength: action.ft.byteLength, copy: action.ft });
        continue;
      }
      const r = results.get(action.module)!;
      const kind = action.embedding ? 'lora_embedding' : 'lora';
      const suffix = action.embedding ? '' : '.weight';
      entries.push({ name: `base_model.model.${action.module}.${kind}_A${suffix}`, dtype: r.dtype, shape: r.aShape, byteLength: r.a.length, bytes: r.a });
      entries.push({ name: `base_model.model.${action.module}.${kind}_B${suffix}`, dtype: r.dtype, shape: r.bShape, byteLength: r.b.length, bytes: r.b });
    }
    const sink = await output.create(ADAPTER_WEIGHTS_FILE);
    const writer = new SafetensorsStreamWriter(sink, entries);
    await writer.begin();
    const step = Math.max(1 << 20, Math.floor(options.memoryBytes / 4));
    for (const entry of entries) {
      if (entry.bytes) {
        await writer.write(entry.bytes, entry.name);
        continue;
      }
      const tensor = entry.copy!;
      const source = await sources.ft(tensor.file);
      for (let offset = 0; offset < tensor.byteLength; offset += step) {
        const length = Math.min(step, tensor.byteLength - offset);
        await writer.write(await source.read(tensor.offset + offset, length), entry.name);
        bytesRead += length;
      }
    }
    await writer.finish();
    const differentRanks = Object.fromEntries([...rankOf].filter(([, r]) => r !== maxRank));
    const targetModules = [...new Set(loras.map((a) => a.module.slice(a.module.lastIndexOf('.') + 1)))].sort();
    // The keys and values mergekit-extract-lora writes, plus PEFT's bias/use_dora defaults spelled out.
    const config = {
      base_model_name_or_path: options.baseModelName,
      peft_type: 'LORA',
      use_rslora: false,
      target_modules: targetModules,
      modules_to_save: plan.modulesToSave,
      task_type: 'CAUSAL_LM',
      r: maxRank,
      lora_alpha: maxRank,
      rank_pattern: differentRanks,
      alpha_pattern: differentRanks,
      lora_dropout: 0.0,
      fan_in_fan_out: false,
      inference_mode: true,
      bias: 'none',
      use_dora: false,
    };
    await output.writeText(ADAPTER_CONFIG_FILE, JSON.stringify(config, null, 4) + '\n');
    await output.writeText('README.md', adapterCard(options, maxRank));
    if (options.signal?.aborted) throw new ExtractCancelledError();
    await output.commit();
    return { modules, saved: plan.actions.length - loras.length, bytesRead, bytesWritten: writer.fileSize };
  } catch (error) {
    await output.abort().catch(() => undefined);
    throw error;
  }
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = values[i * cols + j];
  return out;
}

function adapterCard(options: ExtractRunOptions, rank: number): string {
  return [
    '---',
    `base_model: ${JSON.stringify(options.baseModelName)}`,
    'library_name: peft',
    'tags:',
    '- alloy',
    '- lora',
    '---',
    '',
    `# LoRA extracted from ${options.fineTuneName}`,
    '',
    `A rank-${rank} LoRA adapter approximating the difference between ${options.fineTuneName} and its base ${options.baseModelName},`,
    `extracted with Alloy's \`extract-lora\` (randomized SVD, seed ${options.seed}).`,
    ...(options.invocation ? ['', '```sh', options.invocation, '```'] : []),
    '',
  ].join('\n');
}

/**
 * ΔW = W_ft − W_base of one module as row blocks. Held in f32 when it fits in half the budget
 * (one read for all passes), else read again on every pass, one block of rows at a time.
 */
async function deltaBlocks(action: Extract<ExtractAction, { kind: 'lora' }>, sources: ExtractSources, memoryBytes: number, onRead: (bytes: number) => void): Promise<RowBlocks> {
  const [m, n] = action.ft.shape;
  const [baseSource, ftSource] = await Promise.all([sources.base(action.base.file), sources.ft(action.ft.file)]);
  const perRow = n * (dtypeSize(action.ft.dtype) + dtypeSize(action.base.dtype) + 12);
  // A multiple of 4 rows: the SVD's kernels group rows by four, so held and streamed ΔW sum alike.
  const blockRows = Math.max(4, Math.floor(memoryBytes / 4 / perRow / 4) * 4);
  const readBlock = async (r0: number, count: number, out: Float32Array): Promise<Float32Array> => {
    const read = (source: ByteSource, tensor: TensorInfo): Promise<Uint8Array> => {
      const size = dtypeSize(tensor.dtype);
      onRead(count * n * size);
      return source.read(tensor.offset + r0 * n * size, count * n * size);
    };
    const [ftBytes, baseBytes] = await Promise.all([read(ftSource, action.ft), read(baseSource, action.base)]);
    const ft = decodeToF32(ftBytes, action.ft.dtype as FloatDtype, out);
    const base = decodeToF32(baseBytes, action.base.dtype as FloatDtype);
    for (let i = 0; i < count * n; i++) ft[i] -= base[i];
    return ft;
  };
  if (m * n * 4 <= memoryBytes / 2) {
    const all = new Float32Array(m * n);
    for (let r = 0; r < m; r += blockRows) {
      const count = Math.min(blockRows, m - r);
      await readBlock(r, count, all.subarray(r * n, (r + count) * n));
    }
    return {
      rows: m,
      cols: n,
      async forEachBlock(visit) {
        for (let r = 0; r < m; r += blockRows) {
          const count = Math.min(blockRows, m - r);
          visit(r, count, all.subarray(r * n, (r + count) * n));
        }
      },
    };
  }
  const scratch = new Float32Array(blockRows * n);
  return {
    rows: m,
    cols: n,
    async forEachBlock(visit) {
      for (let r = 0; r < m; r += blockRows) {
        const count = Math.min(blockRows, m - r);
        visit(r, count, await readBlock(r, count, scratch.subarray(0, count * n)));
      }
    },
  };
}
