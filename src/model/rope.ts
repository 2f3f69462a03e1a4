import { ForwardModelError } from './errors';

/**
 * Rotary embedding frequencies from a config's `rope_theta` and `rope_scaling`, following the
 * definitions of Hugging Face transformers' `modeling_rope_utils` (written from their formulas):
 * default, linear, dynamic (NTK), llama3, yarn and longrope (`su` is its old name). Anything else is
 * refused, because a silently wrong rotation gives plausible but wrong numbers.
 */

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3' | 'yarn' | 'longrope';

export const SUPPORTED_ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3', 'yarn', 'longrope'];

export interface RopeSpec {
  readonly type: RopeType;
  readonly theta: number;
  /** Rotated dimensions per head (head_dim × partial_rotary_factor, even). */
  readonly rotaryDim: number;
  readonly maxPositions: number;
  /** The rest of `rope_scaling` (factor, low_freq_factor, …), validated when the frequencies are made. */
  readonly scaling: Readonly<Record<string, unknown>>;
  /** `original_max_position_embeddings` at the top level of the config (Phi-3's LongRoPE). */
  readonly originalMaxPositions: number | null;
}

export interface RopeFrequencies {
  readonly invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN's and LongRoPE's attention factor). */
  readonly attentionScaling: number;
}

/** Reads the RoPE settings from a config; throws for a scaling type Alloy does not implement. */
export function ropeSpecFromConfig(config: Readonly<Record<string, unknown>>, headDim: number, model: string): RopeSpec {
  const theta = numberOr(config.rope_theta, 10000);
  const partial = numberOr(config.partial_rotary_factor, 1);
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new ForwardModelError(model, `partial_rotary_factor ${partial} gives ${rotaryDim} rotary dimensions of ${headDim}; it must be a positive even number`);
  }
  const raw = config.rope_scaling;
  const maxPositions = numberOr(config.max_position_embeddings, 2048);
  const originalMaxPositions = typeof config.original_max_position_embeddings === 'number' ? config.original_max_position_embeddings : null;
  if (raw === null || raw === undefined) return { type: 'default', theta, rotaryDim, maxPositions, scaling: {}, originalMaxPositions };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ForwardModelError(model, 'config.json: rope_scaling must be an object or null');
  }
  const scaling = raw as Record<string, unknown>;
  const name = scaling.rope_type ?? scaling.type ?? 'default';
  const type = name === 'su' ? 'longrope' : name;
  if (typeof type !== 'string' || !(SUPPORTED_ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ForwardModelError(
      model,
      `config.json: rope_scaling type ${JSON.stringify(String(name)).slice(0, 60)} is not supported by Alloy's forward pass ` +
        `(supported: ${SUPPORTED_ROPE_TYPES.join(', ')}); this model cannot be evaluated here`,
    );
  }
  return { type: type as RopeType, theta, rotaryDim, maxPositions, scaling, originalMaxPositions };
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** The factor of `rope_scaling`, checked. */
function factorOf(spec: RopeSpec, model: string): number {
  const factor = spec.scaling.factor;
  if (typeof factor !== 'number' || !(factor > 0)) {
    throw new ForwardModelError(model, `config.json: rope_scaling ${spec.type} needs a positive "factor"`);
  }
  return factor;
}

/**
 * The inverse frequencies for a batch whose longest sequence has `seqLen` tokens (dynamic NTK
 * and LongRoPE depend on it). Computed in f64 and rounded to f32 once, as transformers keeps
 * `inv_freq` in f32.
 */
export function ropeFrequencies(spec: RopeSpec, seqLen: number, model: string): RopeFrequencies {
  const dim = spec.rotaryDim;
  const half = dim / 2;
  const exponents = Array.from({ length: half }, (_, k) => (2 * k) / dim);
  const base = (theta: number) => exponents.map((e) => 1 / theta ** e);
  const s = spec.scaling;
  let inv: number[];
  let attentionScaling = 1;
  switch (spec.type) {
    case 'default':
      inv = base(spec.theta);
      break;
    case 'linear': {
      const factor = factorOf(spec, model);
      inv = base(spec.theta).map((f) => f / factor);
      break;
    }
    case 'dynamic': {
      const factor = factorOf(spec, model);
      const maxPos = spec.maxPositions;
      let theta = spec.theta;
      // Only sequences longer than the trained context change the base.
      if (seqLen > maxPos) theta = theta * ((factor * seqLen) / maxPos - (factor - 1)) ** (dim / (dim - 2));
      inv = base(theta);
      break;
    }
    case 'llama3': {
      const factor = factorOf(spec, model);
      const low = numberOr(s.low_freq_factor, 1);
      const high = numberOr(s.high_freq_factor, 4);
      const oldContext = numberOr(s.original_max_position_embeddings, 8192);
      const lowWavelen = oldContext / low;
      const highWavelen = oldContext / high;
      inv = base(spec.theta).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return f / factor;
        const smooth = (oldContext / wavelen - low) / (high - low);
        return (1 - smooth) * (f / factor) + smooth * f;
      });
      break;
    }
    case 'yarn': {
      const factor = factorOf(spec, model);
      const original = numberOr(s.original_max_position_embeddings, spec.maxPositions);
      const mscaleOf = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      if (typeof s.attention_factor === 'number') attentionScaling = s.attention_factor;
      else if (typeof s.mscale === 'number' && typeof s.mscale_all_dim === 'number' && s.mscale && s.mscale_all_dim) {
        attentionScaling = mscaleOf(factor, s.mscale) / mscaleOf(factor, s.mscale_all_dim);
      } else attentionScaling = mscaleOf(factor);
      const betaFast = numberOr(s.beta_fast, 32);
      const betaSlow = numberOr(s.beta_slow, 1);
      const correctionDim = (rotations: number) =>
        (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(spec.theta));
      const lowDim = Math.max(Math.floor(correctionDim(betaFast)), 0);
      let highDim = Math.min(Math.ceil(correctionDim(betaSlow)), dim - 1);
      if (lowDim === highDim) highDim += 0.001;
      inv = base(spec.theta).map((f, k) => {
        const ramp = Math.min(1, Math.max(0, (k - lowDim) / (highDim - lowDim)));
        const extrapolation = 1 - ramp;
        return (f / factor) * (1 - extrapolation) + f * extrapolation;
      });
      break;
    }
    case 'longrope': {
      const original = spec.originalMaxPositions ?? numberOr(s.original_max_position_embeddings, spec.maxPositions);
      const factor = spec.originalMaxPositions !== null ? spec.maxPositions / spec.originalMaxPositions : numberOr(s.factor, 1);
      if (typeof s.attention_factor === 'number') attentionScaling = s.attention_factor;
      else attentionScaling = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original));
      const ext = seqLen > original ? s.long_factor : s.short_factor;
      if (!Array.isArray(ext) || ext.length !== half || !ext.every((v) => typeof v === 'number')) {
        throw new ForwardModelError(model, `config.json: rope_scaling longrope needs short_factor and long_factor lists of ${half} numbers`);
      }
      inv = exponents.map((e, k) => 1 / ((ext[k] as number) * spec.theta ** e));
      break;
    }
  }
  return { invFreq: Float32Array.from(inv), attentionScaling };
}
