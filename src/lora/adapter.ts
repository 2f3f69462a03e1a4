import type { TensorInfo } from '../storage/types';
import { moduleScale, targetsModule, type LoraConfig } from './adapter-config';
import { LoraAdapterError, quote } from './errors';

/** One module's low-rank pair as stored by PEFT. */
export interface LoraModuleWeights {
  /** PEFT module name (the weight's tensor name without `.weight`). */
  readonly module: string;
  /** `lora_embedding_A/B` of an nn.Embedding (A is [r, rows], B is [cols, r]). */
  readonly embedding: boolean;
  readonly a: TensorInfo;
  readonly b: TensorInfo;
}

/** A PEFT LoRA adapter: its config and an index of its tensors (headers only, never weights). */
export interface LoraAdapter {
  /** How the config names it (the part after `+`), for messages. */
  readonly name: string;
  /** Where it was read from (a folder or repo), for messages. */
  readonly location: string;
  readonly config: LoraConfig;
  readonly modules: ReadonlyMap<string, LoraModuleWeights>;
  /** Full tensors that replace the model's (`modules_to_save`), by model tensor name. */
  readonly replacements: ReadonlyMap<string, TensorInfo>;
  /** Tensors PEFT itself ignores when merging this adapter (lora_B biases without `lora_bias`). */
  readonly ignored: readonly string[];
}

/** What an adapter does to one tensor of its model. */
export type AdapterTarget =
  | {
      readonly kind: 'lora';
      readonly module: string;
      readonly a: TensorInfo;
      readonly b: TensorInfo;
      readonly rank: number;
      readonly scale: number;
      /** W is stored [in, out] (fan_in_fan_out, Conv1D) or is an embedding: ΔW = (B·A)ᵀ. */
      readonly transposed: boolean;
    }
  | { readonly kind: 'replace'; readonly tensor: TensorInfo };

const PREFIX = 'base_model.model.';
const LINEAR = /^(.+)\.lora_([AB])(?:\.default)?\.weight$/;
const EMBEDDING = /^(.+)\.lora_embedding_([AB])(?:\.default)?$/;
const DORA = /\.lora_magnitude_vector(\.|$)/;
const LORA_BIAS = /\.lora_B(?:\.default)?\.bias$/;

/** Indexes the tensors of adapter_model.safetensors by module; `where` names the file. */
export function indexAdapter(name: string, location: string, config: LoraConfig, tensors: readonly TensorInfo[], where: string): LoraAdapter {
  const pairs = new Map<string, { embedding: boolean; a?: TensorInfo; b?: TensorInfo }>();
  const replacements = new Map<string, TensorInfo>();
  const ignored: string[] = [];
  for (const tensor of tensors) {
    if (!tensor.name.startsWith(PREFIX)) {
      throw new LoraAdapterError(`${where}: tensor ${quote(tensor.name)} is not a PEFT adapter tensor (names start with '${PREFIX}'): is this a PEFT LoRA adapter?`);
    }
    const key = tensor.name.slice(PREFIX.length);
    if (DORA.test(key)) {
      throw new LoraAdapterError(`${where}: tensor ${quote(tensor.name)} is a DoRA magnitude vector; Alloy does not apply DoRA adapters yet. Merge it with PEFT (merge_and_unload) first.`);
    }
    if (LORA_BIAS.test(key)) {
      if (config.loraBias) {
        throw new LoraAdapterError(`${where}: lora_bias adapters (tensor ${quote(tensor.name)}) are not supported yet. Merge it with PEFT (merge_and_unload) first.`);
      }
      ignored.push(tensor.name);
      continue;
    }
    const linear = LINEAR.exec(key);
    const m = linear ?? EMBEDDING.exec(key);
    if (m) {
      const embedding = linear === null;
      const pair = pairs.get(m[1]) ?? { embedding };
      if (pair.embedding !== embedding) throw new LoraAdapterError(`${where}: module ${quote(m[1])} has both lora_A/B and lora_embedding_A/B tensors`);
      if (m[2] === 'A') pair.a = tensor;
      else pair.b = tensor;
      pairs.set(m[1], pair);
      continue;
    }
    // modules_to_save: PEFT saves the trained copy under the module's own name.
    replacements.set(key.replace(/\.modules_to_save(?:\.default)?\./, '.'), tensor);
  }
  const modules = new Map<string, LoraModuleWeights>();
  for (const [module, pair] of pairs) {
    if (!pair.a || !pair.b) {
      throw new LoraAdapterError(`${where}: module ${quote(module)} has a lora_${pair.a ? 'B' : 'A'} tensor but no lora_${pair.a ? 'A' : 'B'}: the file is incomplete`);
    }
    if (pair.a.shape.length !== 2 || pair.b.shape.length !== 2) {
      throw new LoraAdapterError(`${where}: module ${quote(module)}: lora_A [${pair.a.shape.join(', ')}] and lora_B [${pair.b.shape.join(', ')}] must be matrices`);
    }
    modules.set(module, { module, embedding: pair.embedding, a: pair.a, b: pair.b });
  }
  if (modules.size === 0 && replacements.size === 0) throw new LoraAdapterError(`${where} holds no LoRA weights`);
  return { name, location, config, modules, replacements, ignored };
}

const FLOAT = new Set(['F32', 'F16', 'BF16']);

/**
 * Matches an adapter to its model's tensors: for each targeted tensor, what to apply. Every
 * mismatch (another base model, an inconsistent adapter) is an error naming the adapter, so a
 * merge never starts with an adapter that does not fit.
 */
export function resolveAdapter(adapter: LoraAdapter, model: ReadonlyMap<string, TensorInfo>, modelName: string): Map<string, AdapterTarget> {
  const { config } = adapter;
  // A Hub adapter's location is its name: said once.
  const where = adapter.location === adapter.name ? `LoRA adapter ${adapter.name}` : `LoRA adapter ${adapter.name} (${adapter.location})`;
  const anotherBase = `: the adapter does not fit model ${modelName}${config.baseModel ? ` (it was trained on ${quote(config.baseModel)})` : ''}`;
  const targets = new Map<string, AdapterTarget>();

  // Unknown target_modules: PEFT refuses an adapter none of whose targets exist in the model.
  if (config.targetModules !== null && config.targetModules !== 'all-linear') {
    const modules = [...model.values()].filter((t) => t.shape.length === 2 && t.name.endsWith('.weight')).map((t) => t.name.slice(0, -'.weight'.length));
    if (!modules.some((m) => targetsModule(config, m))) {
      const list = typeof config.targetModules === 'string' ? config.targetModules : config.targetModules.join(', ');
      throw new LoraAdapterError(`${where}: target_modules (${quote(list)}) name no module of model ${modelName}${anotherBase}`);
    }
  }
  // A Conv1D model (GPT-2) stores weights [in, out]; one unambiguous module tells the layout of square ones.
  let conv1d = config.fanInFanOut;
  const shapes = new Map<string, readonly number[]>();
  for (const lora of adapter.modules.values()) {
    const weight = model.get(`${lora.module}.weight`);
    if (!weight) {
      throw new LoraAdapterError(`${where}: it has LoRA weights for module ${quote(lora.module)}, but the model has no tensor ${quote(`${lora.module}.weight`)}${anotherBase}`);
    }
    if (weight.shape.length !== 2 || !FLOAT.has(weight.dtype)) {
      throw new LoraAdapterError(`${where}: module ${quote(lora.module)}: the model's weight is [${weight.shape.join(', ')}] ${weight.dtype}, not a float matrix a LoRA can apply to`);
    }
    shapes.set(lora.module, weight.shape);
    const inputs = lora.a.shape[1];
    const outputs = lora.b.shape[0];
    if (!lora.embedding && weight.shape[0] !== weight.shape[1] && weight.shape[0] === inputs && weight.shape[1] === outputs) conv1d = true;
  }
  for (const lora of adapter.modules.values()) {
    const shape = shapes.get(lora.module)!;
    const [ar, ac] = lora.a.shape;
    const [br, bc] = lora.b.shape;
    if (!targetsModule(config, lora.module)) {
      throw new LoraAdapterError(`${where}: it has LoRA weights for module ${quote(lora.module)}, which its target_modules do not name: the adapter's files disagree`);
    }
    if (ar !== bc) throw new LoraAdapterError(`${where}: module ${quote(lora.module)}: lora_A is [${ar}, ${ac}] but lora_B is [${br}, ${bc}]; their ranks differ`);
    const { rank, scale } = moduleScale(config, lora.module);
    if (ar !== rank) {
      throw new LoraAdapterError(`${where}: module ${quote(lora.module)} has rank ${ar} in adapter_model.safetensors but ${rank} in adapter_config.json (r / rank_pattern)`);
    }
    const normal = shape[0] === br && shape[1] === ac;
    const transposed = shape[0] === ac && shape[1] === br;
    const useTransposed = lora.embedding ? transposed : transposed && (!normal || conv1d);
    if (!(lora.embedding ? transposed : normal || transposed)) {
      throw new LoraAdapterError(
        `${where}: module ${quote(lora.module)}: the model's weight is [${shape.join(', ')}] but the adapter's ${lora.embedding ? 'lora_embedding' : 'lora'}_A is [${ar}, ${ac}] and _B [${br}, ${bc}]${anotherBase}`,
      );
    }
    if (rank > Math.min(shape[0], shape[1])) {
      throw new LoraAdapterError(`${where}: module ${quote(lora.module)} has rank ${rank}, larger than its weight [${shape.join(', ')}] allows (at most ${Math.min(shape[0], shape[1])})`);
    }
    targets.set(`${lora.module}.weight`, { kind: 'lora', module: lora.module, a: lora.a, b: lora.b, rank, scale, transposed: useTransposed });
  }
  for (const [name, tensor] of adapter.replacements) {
    const own = model.get(name);
    if (!own) throw new LoraAdapterError(`${where}: it saves a full tensor ${quote(name)} (modules_to_save), which the model does not have${anotherBase}`);
    if (own.shape.join() !== tensor.shape.join() || !FLOAT.has(tensor.dtype)) {
      throw new LoraAdapterError(`${where}: its full tensor ${quote(name)} is [${tensor.shape.join(', ')}] ${tensor.dtype} but the model's is [${own.shape.join(', ')}] ${own.dtype}${anotherBase}`);
    }
    if (targets.has(name)) throw new LoraAdapterError(`${where}: tensor ${quote(name)} has both LoRA weights and a full replacement`);
    targets.set(name, { kind: 'replace', tensor });
  }
  return targets;
}
