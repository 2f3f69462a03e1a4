import type { ArchitectureDefinition } from './types';

// Verbatim copies of mergekit's single-module JSON definitions (see definitions/SOURCE.md).
import apertus from './definitions/apertus.json';
import arcee from './definitions/arcee.json';
import baichuan from './definitions/baichuan.json';
import bertMaskedLm from './definitions/bert-masked-lm.json';
import bertSequenceClassification from './definitions/bert-sequence-classification.json';
import bert from './definitions/bert.json';
import chatglm from './definitions/chatglm.json';
import cohere from './definitions/cohere.json';
import cohere2 from './definitions/cohere2.json';
import distilbertMaskedLm from './definitions/distilbert-masked-lm.json';
import distilbertSequenceClassification from './definitions/distilbert-sequence-classification.json';
import distilbertTokenClassification from './definitions/distilbert-token-classification.json';
import distilbert from './definitions/distilbert.json';
import exaone from './definitions/exaone.json';
import falcon from './definitions/falcon.json';
import gemma from './definitions/gemma.json';
import gemma2 from './definitions/gemma2.json';
import gemma3 from './definitions/gemma3.json';
import glm4 from './definitions/glm4.json';
import gptNeox from './definitions/gpt-neox.json';
import gpt2SequenceClassification from './definitions/gpt2-sequence-classification.json';
import gpt2 from './definitions/gpt2.json';
import gptbigcode from './definitions/gptbigcode.json';
import granite from './definitions/granite.json';
import granite4moehybrid from './definitions/granite4moehybrid.json';
import internlm2 from './definitions/internlm2.json';
import jais from './definitions/jais.json';
import lfm2 from './definitions/lfm2.json';
import llamaSequenceClassification from './definitions/llama-sequence-classification.json';
import llama from './definitions/llama.json';
import mamba from './definitions/mamba.json';
import mistral from './definitions/mistral.json';
import mixtral from './definitions/mixtral.json';
import olmo2 from './definitions/olmo2.json';
import phi1 from './definitions/phi-1.json';
import phi2Old from './definitions/phi2-old.json';
import phi2 from './definitions/phi2.json';
import phi3Small from './definitions/phi3-small.json';
import phi3 from './definitions/phi3.json';
import qwen from './definitions/qwen.json';
import qwen2 from './definitions/qwen2.json';
import qwen3 from './definitions/qwen3.json';
import qwen3Moe from './definitions/qwen3_moe.json';
import robertaMaskedLm from './definitions/roberta-masked-lm.json';
import robertaSequenceClassification from './definitions/roberta-sequence-classification.json';
import robertaTokenClassification from './definitions/roberta-token-classification.json';
import roberta from './definitions/roberta.json';
import solar from './definitions/solar.json';
import stablelm from './definitions/stablelm.json';
import stablelm2 from './definitions/stablelm2.json';
import starcoder2 from './definitions/starcoder2.json';

/**
 * Every known definition. Each is a single shared object, so two models have the same
 * architecture exactly when `findArchitecture` returns the same object for both.
 */
export const ARCHITECTURES: readonly ArchitectureDefinition[] = Object.freeze([
  apertus, arcee, baichuan, bertMaskedLm, bertSequenceClassification, bert, chatglm, cohere,
  cohere2, distilbertMaskedLm, distilbertSequenceClassification, distilbertTokenClassification,
  distilbert, exaone, falcon, gemma, gemma2, gemma3, glm4, gptNeox, gpt2SequenceClassification,
  gpt2, gptbigcode, granite, granite4moehybrid, internlm2, jais, lfm2,
  llamaSequenceClassification, llama, mamba, mistral, mixtral, olmo2, phi1, phi2Old, phi2,
  phi3Small, phi3, qwen, qwen2, qwen3, qwen3Moe, robertaMaskedLm, robertaSequenceClassification,
  robertaTokenClassification, roberta, solar, stablelm, stablelm2, starcoder2,
] satisfies ArchitectureDefinition[]);

const BY_CLASS_NAME: ReadonlyMap<string, readonly ArchitectureDefinition[]> = (() => {
  const map = new Map<string, ArchitectureDefinition[]>();
  for (const def of ARCHITECTURES) {
    for (const name of def.architectures) {
      const list = map.get(name) ?? [];
      list.push(def);
      map.set(name, list);
    }
  }
  return map;
})();

/**
 * The definition for a model's config.json (docs/architectures.md §1), or null when none is known (the caller
 * then infers one from the tensor names). Throws when `architectures` is not a one-entry list.
 */
export function findArchitecture(config: Record<string, unknown>): ArchitectureDefinition | null {
  const archs = config.architectures;
  if (!Array.isArray(archs)) {
    throw new Error(
      'config.json has no "architectures" list, so the model architecture is unknown; ' +
        'add e.g. "architectures": ["LlamaForCausalLM"] to the model\'s config.json',
    );
  }
  if (archs.length !== 1 || typeof archs[0] !== 'string') {
    throw new Error(
      `config.json "architectures" must name exactly one architecture, found ${JSON.stringify(archs)}`,
    );
  }
  const candidates = BY_CLASS_NAME.get(archs[0]);
  if (!candidates) return null;
  if (candidates.length === 1) return candidates[0];
  return candidates.find((c) => c.model_type === config.model_type) ?? null;
}

/**
 * Layer count of a model: `override_num_layers` if the definition has one, else the value at
 * `num_layers_config_key` (dotted paths walk nested objects; default `num_hidden_layers`).
 */
export function numLayers(config: Record<string, unknown>, def: ArchitectureDefinition): number {
  if (def.override_num_layers !== undefined && def.override_num_layers !== null) {
    return def.override_num_layers;
  }
  const key = def.num_layers_config_key ?? 'num_hidden_layers';
  const parts = key.split('.');
  let obj: unknown = config;
  for (let i = 0; i < parts.length; i++) {
    if (obj === null || typeof obj !== 'object' || !(parts[i] in obj)) {
      throw new Error(
        `config.json has no "${parts.slice(0, i + 1).join('.')}", needed for the layer count of a ` +
          `${def.model_type || 'inferred'} model`,
      );
    }
    obj = (obj as Record<string, unknown>)[parts[i]];
  }
  if (typeof obj !== 'number' || !Number.isInteger(obj) || obj < 0) {
    throw new Error(`config.json "${key}" must be a non-negative integer layer count, found ${JSON.stringify(obj)}`);
  }
  return obj;
}
