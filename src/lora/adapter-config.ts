import { LoraAdapterError, quote } from './errors';

/** File names of a PEFT adapter folder. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** The keys of adapter_config.json that decide how a LoRA is merged (PEFT's LoraConfig). */
export interface LoraConfig {
  readonly r: number;
  readonly loraAlpha: number;
  readonly useRslora: boolean;
  readonly fanInFanOut: boolean;
  /** A list of module-name suffixes, one regex (full match), `all-linear`, or null. */
  readonly targetModules: readonly string[] | string | null;
  readonly rankPattern: Readonly<Record<string, number>>;
  readonly alphaPattern: Readonly<Record<string, number>>;
  readonly modulesToSave: readonly string[];
  /** PEFT's `lora_bias`: lora_B has a bias that is added to the base layer's bias on merge. */
  readonly loraBias: boolean;
  readonly baseModel?: string;
}

/**
 * Parses adapter_config.json. Adapters whose merge is not `W + scale·B·A` (DoRA, other PEFT
 * types) are refused here, before any weight is read; `where` names the file in messages.
 */
export function parseLoraConfig(text: string, where: string): LoraConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new LoraAdapterError(`${where} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new LoraAdapterError(`${where} is not a JSON object`);
  const c = raw as Record<string, unknown>;
  const peftType = c.peft_type ?? 'LORA';
  if (peftType !== 'LORA') {
    throw new LoraAdapterError(
      `${where}: peft_type is ${quote(String(peftType))}; Alloy merges LoRA adapters only (peft_type "LORA"). ` +
        'Merge this adapter with PEFT (merge_and_unload) and reference the merged model instead.',
    );
  }
  if (c.use_dora === true) {
    throw new LoraAdapterError(
      `${where}: this is a DoRA adapter (use_dora: true), whose merge rescales each weight column; Alloy does not apply DoRA yet. ` +
        'Merge it with PEFT (merge_and_unload) and reference the merged model instead.',
    );
  }
  const positive = (key: string, value: unknown, fallback?: number): number => {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new LoraAdapterError(`${where}: ${key} must be a positive number; got ${quote(JSON.stringify(value) ?? 'undefined')}`);
    }
    return value;
  };
  const r = positive('r', c.r, 8);
  if (!Number.isInteger(r)) throw new LoraAdapterError(`${where}: r must be an integer; got ${r}`);
  const pattern = (key: string): Record<string, number> => {
    const value = c[key];
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new LoraAdapterError(`${where}: ${key} must be an object {module: number}`);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = positive(`${key}[${quote(k)}]`, v);
    return out;
  };
  const strings = (key: string): string[] => {
    const value = c[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new LoraAdapterError(`${where}: ${key} must be a list of module names`);
    return value as string[];
  };
  let targetModules: LoraConfig['targetModules'] = null;
  if (typeof c.target_modules === 'string') targetModules = c.target_modules;
  else if (c.target_modules !== undefined && c.target_modules !== null) targetModules = strings('target_modules');
  return {
    r,
    loraAlpha: positive('lora_alpha', c.lora_alpha, 8),
    useRslora: c.use_rslora === true,
    fanInFanOut: c.fan_in_fan_out === true,
    targetModules,
    rankPattern: pattern('rank_pattern'),
    alphaPattern: pattern('alpha_pattern'),
    modulesToSave: strings('modules_to_save'),
    loraBias: c.lora_bias === true,
    ...(typeof c.base_model_name_or_path === 'string' ? { baseModel: c.base_model_name_or_path } : {}),
  };
}

/**
 * The key of a rank/alpha pattern that applies to `module`, as PEFT picks it: an exact name
 * first, else the first key that, read as a regex, matches the whole name or a dotted suffix.
 */
export function patternKey(pattern: Readonly<Record<string, number>>, module: string): string | undefined {
  const keys = Object.keys(pattern);
  if (keys.includes(module)) return module;
  return keys.find((key) => {
    try {
      return new RegExp(`^(?:.*\\.)?(?:${key})$`).test(module);
    } catch {
      return false;
    }
  });
}

/** Rank, alpha and the merge scale of one module (`alpha / r`, or `alpha / √r` with rsLoRA). */
export function moduleScale(config: LoraConfig, module: string): { rank: number; alpha: number; scale: number } {
  const rk = patternKey(config.rankPattern, module);
  const ak = patternKey(config.alphaPattern, module);
  const rank = rk !== undefined ? config.rankPattern[rk] : config.r;
  const alpha = ak !== undefined ? config.alphaPattern[ak] : config.loraAlpha;
  return { rank, alpha, scale: config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

/** Whether target_modules selects `module` (PEFT: a regex matches the whole name; a list entry matches it or a dotted suffix). */
export function targetsModule(config: LoraConfig, module: string): boolean {
  const t = config.targetModules;
  if (t === null || t === 'all-linear') return true;
  if (typeof t === 'string') {
    try {
      return new RegExp(`^(?:${t})$`).test(module);
    } catch {
      return false;
    }
  }
  return t.some((entry) => module === entry || module.endsWith(`.${entry}`));
}
