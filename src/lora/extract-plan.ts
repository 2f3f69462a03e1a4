import type { ModelTensors, TensorInfo } from '../storage/types';
import { LoraAdapterError, quote } from './errors';

/** mergekit-extract-lora's options (names and defaults as its CLI's). */
export interface ExtractOptions {
  /** --max-rank (128). */
  readonly maxRank: number;
  /** --distribute-scale / --no-distribute-scale (true). */
  readonly distributeScale: boolean;
  /** --embed-lora (false): embeddings and the output head as LoRAs instead of modules_to_save. */
  readonly embedLora: boolean;
  /** --save-module (repeatable): modules saved at full rank. */
  readonly modulesToSave: readonly string[];
  /** --exclude-regex / -e, --include-regex / -i (repeatable; searched in the module name). */
  readonly excludeRegexes: readonly string[];
  readonly includeRegexes: readonly string[];
  /** --sv-epsilon (0). */
  readonly svEpsilon: number;
  /** --skip-undecomposable: leave out modules that are not matrices instead of saving them whole. */
  readonly skipUndecomposable: boolean;
}

export type ExtractAction =
  | {
      readonly kind: 'lora';
      readonly module: string;
      /** An nn.Embedding: written as lora_embedding_A/B, ΔW taken transposed. */
      readonly embedding: boolean;
      readonly base: TensorInfo;
      readonly ft: TensorInfo;
      /** min(max rank, min(m, n)). */
      readonly maxRank: number;
    }
  /** A tensor copied whole from the fine-tune (modules_to_save): `base_model.model.<name>`. */
  | { readonly kind: 'save'; readonly ft: TensorInfo };

export interface ExtractPlan {
  readonly actions: readonly ExtractAction[];
  /** modules_to_save as written to adapter_config.json (the options' plus those added). */
  readonly modulesToSave: readonly string[];
  readonly warnings: readonly string[];
}

const INPUT_EMBEDDING = /(^|\.)(embed_tokens|wte|wpe|embed_in|word_embeddings|embed_positions|position_embeddings)$/;
const OUTPUT_HEAD = /(^|\.)(lm_head|embed_out)$/;

/**
 * Decides, tensor by tensor of the fine-tune, what the adapter holds, with mergekit's rules:
 * matrices become LoRAs; embeddings and the output head are saved whole unless --embed-lora
 * (and always when the vocabularies differ); modules named by --save-module are saved whole;
 * modules that are not matrices (norms) are saved whole unless --skip-undecomposable; the
 * include/exclude regexes pick the LoRA modules. Biases go with a module saved whole; a LoRA
 * module's bias change is left out (PEFT ignores lora_B biases without lora_bias).
 */
export function planExtraction(base: ModelTensors, ft: ModelTensors, options: ExtractOptions): ExtractPlan {
  const warnings: string[] = [];
  const modulesToSave = [...options.modulesToSave];
  const regex = (r: string, what: string): RegExp => {
    try {
      return new RegExp(r);
    } catch (error) {
      throw new LoraAdapterError(`${what} ${quote(r)} is not a valid regular expression: ${(error as Error).message}`);
    }
  };
  const include = options.includeRegexes.map((r) => regex(r, '--include-regex'));
  const exclude = options.excludeRegexes.map((r) => regex(r, '--exclude-regex'));
  const excluded = (name: string): boolean => exclude.some((r) => r.test(name));
  const shouldExtract = (name: string): boolean => (include.length === 0 || include.some((r) => r.test(name))) && !excluded(name);

  let embedLora = options.embedLora;
  const embedName = [...ft.tensors.keys()].find((n) => n.endsWith('.weight') && INPUT_EMBEDDING.test(n.slice(0, -7)) && !/pos/.test(n));
  if (embedLora && embedName) {
    const a = ft.tensors.get(embedName)!.shape[0];
    const b = base.tensors.get(embedName)?.shape[0];
    if (b !== undefined && a !== b) {
      warnings.push(`Vocabulary sizes differ (fine-tune ${a} tokens, base ${b}): embeddings are saved whole (modules_to_save), not as LoRAs.`);
      embedLora = false;
    }
  }

  const actions: ExtractAction[] = [];
  const saved = new Set<string>();
  let skippedBiases = 0;
  const lastSegment = (module: string): string => module.slice(module.lastIndexOf('.') + 1);
  const isSaved = (module: string): boolean => modulesToSave.includes(module) || modulesToSave.includes(lastSegment(module));
  for (const tensor of ft.tensors.values()) {
    if (!tensor.name.endsWith('.weight')) continue;
    const module = tensor.name.slice(0, -'.weight'.length);
    const key = lastSegment(module);
    if (!['F32', 'F16', 'BF16'].includes(tensor.dtype)) {
      warnings.push(`${tensor.name}: ${tensor.dtype} tensor left out (not a float weight).`);
      continue;
    }
    const isEmbedding = INPUT_EMBEDDING.test(module);
    if (!embedLora && (isEmbedding || OUTPUT_HEAD.test(module)) && !excluded(module) && !modulesToSave.includes(key)) {
      warnings.push(`${key} is added to modules_to_save (saved whole; pass --embed-lora to extract it as a LoRA).`);
      modulesToSave.push(key);
    }
    const baseTensor = base.tensors.get(tensor.name);
    if (isSaved(module)) {
      saved.add(module);
      actions.push({ kind: 'save', ft: tensor });
      continue;
    }
    if (!shouldExtract(module)) continue;
    if (tensor.shape.length === 2) {
      if (!baseTensor) throw new LoraAdapterError(`the base model has no tensor ${quote(tensor.name)}, which the fine-tune has: is it the fine-tune's base?`);
      if (baseTensor.shape.join() !== tensor.shape.join()) {
        throw new LoraAdapterError(
          `${tensor.name} is [${tensor.shape.join(', ')}] in the fine-tune but [${baseTensor.shape.join(', ')}] in the base: is it the fine-tune's base? ` +
            '(Save such a module whole with --save-module, or leave it out with --exclude-regex.)',
        );
      }
      const [m, n] = tensor.shape;
      actions.push({ kind: 'lora', module, embedding: isEmbedding, base: baseTensor, ft: tensor, maxRank: Math.min(options.maxRank, m, n) });
      continue;
    }
    if (options.skipUndecomposable) continue;
    if (!modulesToSave.includes(key)) {
      warnings.push(`${key} is not a matrix: saved whole (modules_to_save); --skip-undecomposable leaves it out.`);
      modulesToSave.push(key);
    }
    saved.add(module);
    actions.push({ kind: 'save', ft: tensor });
  }
  for (const tensor of ft.tensors.values()) {
    if (!tensor.name.endsWith('.bias')) continue;
    const module = tensor.name.slice(0, -'.bias'.length);
    if (saved.has(module)) actions.push({ kind: 'save', ft: tensor });
    else if (actions.some((a) => a.kind === 'lora' && a.module === module)) skippedBiases++;
  }
  if (skippedBiases > 0) {
    warnings.push(`${skippedBiases} bias change(s) of LoRA modules are left out: PEFT applies a LoRA to weights only (without lora_bias).`);
  }
  return { actions, modulesToSave, warnings };
}
