import {
  formatModelReference,
  matchingArchitectures,
  MOE_INPUT_MODEL_TYPES,
  MOE_OUTPUT_ARCHITECTURES,
  sharedExpertProblem,
  validateMoeConfig,
  type ModelReference,
  type MoeConfig,
  type MoeExpert,
  type MoeOutputArchitecture,
} from '../config';
import { loadTextTokenizer, type TextTokenizer } from '../model';
import { TOKENIZER_FILES } from '../plan';
import { dtypeSize, isFloatDtype, loadModelTensors, safetensorsDtypeFromConfig, untrustedText, type FloatDtype, type SafetensorsDtype, type TensorInfo } from '../storage';
import { MLP_PROJECTIONS, OUTPUT_ARCHITECTURES, type MoeLayout, type OutputArchitecture } from './architectures';
import { MoeConfigError } from './errors';
import type { GatedExpert, MoeOptions, MoePlan, MoeSources, OpenedModel, OutputTensor, TensorPart } from './types';

/**
 * Everything a MoE build decides before it reads a weight (docs/moe.md §1): the config's own rules,
 * the models' config.json (same family and sizes as the base), the output architecture, the
 * prompts tokenised, the safetensors headers, and the list of output tensors with where each byte
 * comes from. Every refusal is a MoeConfigError with the YAML path at fault.
 */
export async function planMoe(config: MoeConfig, sources: MoeSources, options: MoeOptions = {}): Promise<MoePlan> {
  const configErrors = validateMoeConfig(config).filter(
    (i) => i.severity === 'error' && !(options.allowAllSame && i.message.startsWith('every expert is the same model')),
  );
  if (configErrors.length > 0) throw new MoeConfigError(configErrors[0].path, configErrors[0].message);
  const candidates = matchingArchitectures(config.architecture);
  if (candidates.length === 0) {
    throw new MoeConfigError(
      'architecture',
      `no output architecture is named '${untrustedText(config.architecture ?? '', 40)}': use one of ${MOE_OUTPUT_ARCHITECTURES.join(', ')} (a case-insensitive prefix such as mixtral or qwen3 is enough)`,
    );
  }

  // config.json of every model, each opened once however often the config names it.
  const opened = new Map<string, OpenedModel>();
  const open = async (ref: ModelReference, path: string): Promise<OpenedModel> => {
    const key = formatModelReference(ref);
    const known = opened.get(key);
    if (known) return known;
    const folder = await sources.folder(ref, path);
    const text = await folder.readText('config.json');
    if (text === null) throw new MoeConfigError(path, `${untrustedText(key)} has no config.json: it is not a Hugging Face model folder`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new MoeConfigError(path, `config.json of ${untrustedText(key)} is not valid JSON (${untrustedText((error as Error).message, 100)})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new MoeConfigError(path, `config.json of ${untrustedText(key)} is not a JSON object`);
    const model: OpenedModel = { key, path, folder, config: parsed as Record<string, unknown> };
    opened.set(key, model);
    return model;
  };
  const base = await open(config.base_model, 'base_model');
  const experts: OpenedModel[] = [];
  for (const [i, e] of config.experts.entries()) experts.push(await open(e.source_model, `experts[${i}].source_model`));
  const shared: OpenedModel[] = [];
  for (const [i, e] of (config.shared_experts ?? []).entries()) shared.push(await open(e.source_model, `shared_experts[${i}].source_model`));

  const baseType = stringField(base, 'model_type');
  const H = intField(base, 'hidden_size');
  const L = intField(base, 'num_hidden_layers');
  const I = intField(base, 'intermediate_size');
  const donors = [...experts.map((m, i) => ({ m, path: `experts[${i}].source_model` })), ...shared.map((m, i) => ({ m, path: `shared_experts[${i}].source_model` }))];
  for (const { m, path } of donors) {
    const type = stringField({ ...m, path }, 'model_type');
    if (type !== baseType) {
      throw new MoeConfigError(path, `${untrustedText(m.key)} is a ${untrustedText(type, 40)} model but the base ${untrustedText(base.key)} is ${untrustedText(baseType, 40)}: every expert must be of the base model's architecture`);
    }
    for (const [field, want] of [['hidden_size', H], ['num_hidden_layers', L], ['intermediate_size', I]] as const) {
      const got = intField({ ...m, path }, field);
      if (got !== want) {
        throw new MoeConfigError(path, `${untrustedText(m.key)} has ${field} ${got} but the base ${untrustedText(base.key)} has ${want}: experts must have the base model's sizes (fine-tunes of the same base)`);
      }
    }
  }

  const arch = chooseArchitecture(config, candidates, baseType);
  const layout: MoeLayout = options.layout ?? 'per-expert';
  if (!arch.layouts.includes(layout)) {
    throw new MoeConfigError(
      config.architecture !== undefined ? 'architecture' : '',
      `${arch.name} is written in the per-expert layout only (mergekit writes no fused ${arch.name} either): use the per-expert layout (drop --layout ${layout})`,
    );
  }

  const dtypeName = options.dtype ?? config.dtype ?? baseDtypeName(base.config);
  let outDtype: FloatDtype | null = null;
  if (dtypeName !== undefined) {
    const d = safetensorsDtypeFromConfig(dtypeName);
    if (!isFloatDtype(d)) throw new MoeConfigError('dtype', `dtype ${dtypeName} is not a float type: use bfloat16, float16 or float32`);
    outDtype = d;
  }

  // The experts that get a router row: routed experts, and a shared expert when it has prompts
  // (Qwen MoE gates it) or the routers are random anyway — as mergekit-moe does.
  const sharedConfigs = config.shared_experts ?? [];
  const randomGates = config.gate_mode === 'random' || config.gate_mode === 'uniform_random';
  const gatedSettings: { expert: MoeExpert; path: string }[] = config.experts.map((expert, i) => ({ expert, path: `experts[${i}]` }));
  if (sharedConfigs.length > 0 && (randomGates || sharedConfigs.some((e) => (e.positive_prompts ?? []).length > 0))) {
    sharedConfigs.forEach((expert, i) => gatedSettings.push({ expert, path: `shared_experts[${i}]` }));
  }
  const gated = randomGates ? gatedSettings.map((g) => ({ ...g, positive: [], negative: [] })) : await tokenizePrompts(base, gatedSettings);

  // Safetensors headers (no weights yet).
  for (const m of opened.values()) m.tensors = await loadModelTensors(m.folder);
  for (const { m, path } of donors) {
    for (let layer = 0; layer < L; layer++) {
      for (const p of MLP_PROJECTIONS) mlpInfo(m, path, layer, p, p === 'down_proj' ? [H, I] : [I, H]);
    }
  }
  if (config.gate_mode === 'cheap_embed' && !base.tensors!.tensors.has(EMBED)) {
    throw new MoeConfigError('base_model', `${untrustedText(base.key)} has no ${EMBED} tensor, which gate_mode cheap_embed reads`);
  }

  const tensors = outputTensors({ arch, layout, base, experts, shared, config, L, H, I, outDtype });
  const outConfig = arch.config(base.config, {
    experts: config.experts.length,
    shared: sharedConfigs.length,
    perToken: config.experts_per_token,
    dtypeName: outDtype === null ? null : DTYPE_NAMES[outDtype],
  });
  const baseFiles = new Set(await base.folder.listFiles());
  const hasTokenizer = baseFiles.has('tokenizer_config.json') && (baseFiles.has('tokenizer.json') || baseFiles.has('tokenizer.model'));
  const tokenizerFiles = options.copyTokenizer === false || !hasTokenizer ? [] : TOKENIZER_FILES.filter((f) => baseFiles.has(f));
  const warnings: string[] = [];
  if (sharedConfigs.length === 0 && (config.experts.length & (config.experts.length - 1)) !== 0) {
    warnings.push(`the model has ${config.experts.length} experts, not a power of two: llama.cpp cannot load it`);
  }
  if (options.copyTokenizer !== false && !hasTokenizer) warnings.push(`${untrustedText(base.key)} has no tokenizer files to copy; add them to the output by hand`);
  return { architecture: arch, layout, base, layers: L, hidden: H, routedExperts: config.experts.length, gated, outDtype, outConfig, tensors, tokenizerFiles, warnings };
}

const EMBED = 'model.embed_tokens.weight';
const DTYPE_NAMES: Readonly<Record<FloatDtype, string>> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

function chooseArchitecture(config: MoeConfig, candidates: readonly MoeOutputArchitecture[], baseType: string): OutputArchitecture {
  const reasons: string[] = [];
  const fit: MoeOutputArchitecture[] = [];
  for (const name of candidates) {
    const problem = sharedExpertProblem(name, config) ?? (MOE_INPUT_MODEL_TYPES[name].includes(baseType) ? undefined : `${name} takes ${MOE_INPUT_MODEL_TYPES[name].join(', ')} models`);
    if (problem) reasons.push(problem);
    else fit.push(name);
  }
  if (fit.length === 0) {
    const path = config.architecture !== undefined ? 'architecture' : (config.shared_experts ?? []).length > 0 ? 'shared_experts' : 'base_model';
    throw new MoeConfigError(path, `no output architecture can hold these ${untrustedText(baseType, 40)} models: ${reasons.join('; ')}`);
  }
  // mergekit-moe prefers Mixtral when it fits (older configs expect it), else the first that fits.
  return OUTPUT_ARCHITECTURES[fit.includes('Mixtral') ? 'Mixtral' : fit[0]];
}

function baseDtypeName(config: Readonly<Record<string, unknown>>): string | undefined {
  for (const key of ['torch_dtype', 'dtype']) {
    const value = config[key];
    if (typeof value === 'string' && ['bfloat16', 'float16', 'float32'].includes(value.replace(/^torch\./, ''))) return value;
  }
  return undefined;
}

function stringField(m: OpenedModel, field: string): string {
  const value = m.config[field];
  if (typeof value !== 'string') throw new MoeConfigError(m.path, `config.json of ${untrustedText(m.key)} has no ${field}`);
  return value;
}

function intField(m: OpenedModel, field: string): number {
  const value = m.config[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new MoeConfigError(m.path, `config.json of ${untrustedText(m.key)} has no usable ${field} (a positive whole number)`);
  }
  return value;
}

function mlpInfo(m: OpenedModel, path: string, layer: number, projection: string, shape: readonly number[]): TensorInfo {
  const name = `model.layers.${layer}.mlp.${projection}.weight`;
  const info = m.tensors!.tensors.get(name);
  if (!info) throw new MoeConfigError(path, `${untrustedText(m.key)} has no tensor ${name}: an expert donates its MLP weights under the names its config.json's family uses`);
  if (!isFloatDtype(info.dtype)) throw new MoeConfigError(path, `${untrustedText(m.key)}: tensor ${name} is ${info.dtype}; expert weights must be F32, F16 or BF16`);
  if (info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1]) {
    throw new MoeConfigError(path, `${untrustedText(m.key)}: tensor ${name} has shape [${info.shape.join(', ')}], not [${shape.join(', ')}] as config.json says`);
  }
  return info;
}

/**
 * Each prompt as mergekit-moe feeds it: the BOS token's text put in front, tokenised without the
 * post-processor's special tokens. A prompt that gives no token of its own is refused.
 */
async function tokenizePrompts(base: OpenedModel, gated: readonly { expert: MoeExpert; path: string }[]): Promise<GatedExpert[]> {
  let tokenizer: TextTokenizer;
  try {
    tokenizer = await loadTextTokenizer(base.folder);
  } catch (error) {
    throw new MoeConfigError('base_model', `the prompts are tokenised with the base model's tokenizer, which cannot be read: ${(error as Error).message}`);
  }
  const prefix = tokenizer.bosToken ?? '';
  return gated.map(({ expert, path }) => {
    const ids = (key: 'positive_prompts' | 'negative_prompts'): number[][] =>
      (expert[key] ?? []).map((prompt, j) => {
        if (tokenizer.encode(prompt, false).length === 0) {
          throw new MoeConfigError(
            `${path}.${key}[${j}]`,
            `the prompt '${untrustedText(prompt, 40)}' gives no tokens with the base model's tokenizer: write a prompt with some text in it, or remove it`,
          );
        }
        return tokenizer.encode(prefix + prompt, false);
      });
    return { expert, path, positive: ids('positive_prompts'), negative: ids('negative_prompts') };
  });
}

interface TensorListInput {
  readonly arch: OutputArchitecture;
  readonly layout: MoeLayout;
  readonly base: OpenedModel;
  readonly experts: readonly OpenedModel[];
  readonly shared: readonly OpenedModel[];
  readonly config: MoeConfig;
  readonly L: number;
  readonly H: number;
  readonly I: number;
  readonly outDtype: FloatDtype | null;
}

const LAYER_MLP = /^model\.layers\.(\d+)\.mlp\./;
const LAYER = /^model\.layers\.(\d+)\./;

/**
 * The output tensors in write order: the base's embeddings, then layer by layer the base's
 * attention and norms followed by that layer's experts, then the base's remaining tensors
 * (final norm, lm_head), then the routers, as mergekit-moe ends with them.
 */
function outputTensors(t: TensorListInput): OutputTensor[] {
  const baseTensors = t.base.tensors!.tensors;
  const dtypeOf = (info: TensorInfo): SafetensorsDtype => (t.outDtype !== null && isFloatDtype(info.dtype) ? t.outDtype : info.dtype);
  const make = (name: string, dtype: SafetensorsDtype, shape: readonly number[], parts: TensorPart[]): OutputTensor => ({
    name,
    dtype,
    shape,
    byteLength: shape.reduce((a, b) => a * b, 1) * dtypeSize(dtype),
    parts,
  });
  const copyOf = (info: TensorInfo, name = info.name): OutputTensor => make(name, dtypeOf(info), info.shape, [{ kind: 'copy', model: t.base, info }]);
  const expertPart = (model: OpenedModel, settings: MoeExpert, layer: number, projection: string, label: string): TensorPart => {
    const info = model.tensors!.tensors.get(`model.layers.${layer}.mlp.${projection}.weight`)!;
    return { kind: 'copy', model, info, expert: { settings, residual: projection === 'down_proj', label: `${label}:${info.name}` } };
  };

  const head: OutputTensor[] = [];
  const perLayer: OutputTensor[][] = Array.from({ length: t.L }, () => []);
  const tail: OutputTensor[] = [];
  for (const info of baseTensors.values()) {
    if (LAYER_MLP.test(info.name) || info.name.endsWith('.rotary_emb.inv_freq')) continue;
    const layer = LAYER.exec(info.name);
    if (layer && Number(layer[1]) < t.L) perLayer[Number(layer[1])].push(copyOf(info));
    else if (info.name.startsWith('model.embed_tokens.')) head.push(copyOf(info));
    else tail.push(copyOf(info));
  }
  const wDtype = (model: OpenedModel, layer: number): SafetensorsDtype =>
    t.outDtype ?? model.tensors!.tensors.get(`model.layers.${layer}.mlp.gate_proj.weight`)!.dtype;

  for (let layer = 0; layer < t.L; layer++) {
    const list = perLayer[layer].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (t.arch.needsAttentionBias) {
      for (const proj of ['q_proj', 'k_proj', 'v_proj']) {
        const name = `model.layers.${layer}.self_attn.${proj}.bias`;
        if (baseTensors.has(name)) continue;
        const weight = baseTensors.get(`model.layers.${layer}.self_attn.${proj}.weight`);
        if (!weight) throw new MoeConfigError('base_model', `${untrustedText(t.base.key)} has no tensor model.layers.${layer}.self_attn.${proj}.weight`);
        const dtype = t.outDtype ?? (isFloatDtype(weight.dtype) ? weight.dtype : 'F32');
        list.push(make(name, dtype, [weight.shape[0]], [{ kind: 'zeros', elements: weight.shape[0] }]));
      }
    }
    if (t.layout === 'fused') {
      const dtype = wDtype(t.experts[0], layer);
      const E = t.experts.length;
      list.push(
        make(t.arch.fusedTensor(layer, 'gate_up_proj'), dtype, [E, 2 * t.I, t.H], t.config.experts.flatMap((e, i) => [
          expertPart(t.experts[i], e, layer, 'gate_proj', `experts[${i}]`),
          expertPart(t.experts[i], e, layer, 'up_proj', `experts[${i}]`),
        ])),
        make(t.arch.fusedTensor(layer, 'down_proj'), dtype, [E, t.H, t.I], t.config.experts.map((e, i) => expertPart(t.experts[i], e, layer, 'down_proj', `experts[${i}]`))),
      );
    } else {
      t.config.experts.forEach((e, i) => {
        for (const p of MLP_PROJECTIONS) {
          const part = expertPart(t.experts[i], e, layer, p, `experts[${i}]`);
          list.push(make(t.arch.expertTensor(layer, i, p), dtypeOf((part as { info: TensorInfo }).info), (part as { info: TensorInfo }).info.shape, [part]));
        }
      });
    }
    (t.config.shared_experts ?? []).forEach((e, i) => {
      for (const p of MLP_PROJECTIONS) {
        const name = t.arch.sharedExpertTensor(layer, p);
        if (name === null) continue;
        const part = expertPart(t.shared[i], e, layer, p, `shared_experts[${i}]`);
        list.push(make(name, dtypeOf((part as { info: TensorInfo }).info), (part as { info: TensorInfo }).info.shape, [part]));
      }
    });
  }

  const routerDtype: SafetensorsDtype = t.outDtype ?? 'F32';
  const routers: OutputTensor[] = [];
  for (let layer = 0; layer < t.L; layer++) {
    routers.push(make(t.arch.routerTensor(layer, t.layout), routerDtype, [t.config.experts.length, t.H], [{ kind: 'router', layer, rows: 'routed' }]));
    const sharedGate = t.arch.sharedGateTensor(layer);
    if (sharedGate !== null) routers.push(make(sharedGate, routerDtype, [1, t.H], [{ kind: 'router', layer, rows: 'shared' }]));
  }
  return [...head, ...perLayer.flat(), ...tail, ...routers];
}
