/** PEFT adapter folders for tests, written with the independent fixture writer (never src/). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gaussian, mulberry32 } from '../fixtures/models';
import { writeSafetensorsFile, type FixtureDtype, type TensorToWrite } from '../fixtures/safetensors';

export interface AdapterModule {
  /** PEFT module name, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly module: string;
  readonly rank: number;
  /** W's shape as stored in the model. */
  readonly weightShape: readonly [number, number];
  /** lora_embedding_A/B ([r, rows] and [cols, r]). */
  readonly embedding?: boolean;
  /** W stored [in, out] (Conv1D): A is [r, rows], B is [cols, r]. */
  readonly fanInFanOut?: boolean;
}

export function randomValues(n: number, seed: number, std: number): Float32Array {
  const g = gaussian(mulberry32(seed));
  return Float32Array.from({ length: n }, () => g() * std);
}

/** Writes adapter_config.json (`config` merged over PEFT's defaults) and adapter_model.safetensors. */
export function writeAdapter(
  dir: string,
  config: Record<string, unknown>,
  modules: readonly AdapterModule[],
  options: { seed?: number; dtype?: FixtureDtype; replacements?: readonly TensorToWrite[]; extra?: readonly TensorToWrite[] } = {},
): void {
  mkdirSync(dir, { recursive: true });
  const full = {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0, bias: 'none', fan_in_fan_out: false,
    use_rslora: false, use_dora: false, rank_pattern: {}, alpha_pattern: {}, modules_to_save: null, target_modules: ['q_proj', 'v_proj'],
    base_model_name_or_path: 'tiny/base', inference_mode: true,
    ...config,
  };
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(full, null, 2));
  const dtype = options.dtype ?? 'F32';
  const tensors: TensorToWrite[] = [];
  let seed = options.seed ?? 100;
  for (const m of modules) {
    const [rows, cols] = m.weightShape;
    const transposed = m.embedding || m.fanInFanOut;
    const inDim = transposed ? rows : cols;
    const outDim = transposed ? cols : rows;
    const kind = m.embedding ? 'lora_embedding' : 'lora';
    const suffix = m.embedding ? '' : '.weight';
    tensors.push({ name: `base_model.model.${m.module}.${kind}_A${suffix}`, dtype, shape: [m.rank, inDim], values: randomValues(m.rank * inDim, seed++, 0.3) });
    tensors.push({ name: `base_model.model.${m.module}.${kind}_B${suffix}`, dtype, shape: [outDim, m.rank], values: randomValues(outDim * m.rank, seed++, 0.1) });
  }
  tensors.push(...(options.replacements ?? []), ...(options.extra ?? []));
  writeSafetensorsFile(join(dir, 'adapter_model.safetensors'), tensors);
}
