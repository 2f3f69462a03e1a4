import type { MoeGateMode } from '../config';
import { ForwardModel, ModelWeights } from '../model';
import { MoeCancelledError } from './errors';
import { randomStream } from './random';
import type { GatedExpert, MoePlan } from './types';

/**
 * Router weights per layer (docs/moe.md §2): a [gated experts, hidden] matrix for each layer whose
 * row e is expert e's gate vector.
 *
 * - `hidden` (= `hidden_last`): for each prompt, the hidden state entering each layer at its last
 *   token; averaged over the expert's positive prompts, minus the same over its negative prompts,
 *   scaled to unit length per layer.
 * - `hidden_avg`: the same with each prompt's hidden states averaged over its tokens.
 * - `cheap_embed`: the sum of the prompts' token embeddings, scaled to unit length (positive and
 *   negative each), positive minus negative, scaled to unit length again; the same for every layer.
 * - `random`: standard normal; `uniform_random`: uniform in ±1/√hidden (nn.Linear's initialisation).
 */
export interface GateOptions {
  readonly seed: number;
  readonly promptBatch: number;
  readonly blockBytes?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number) => void;
}

/** mergekit clamps norms at 1e-8 before dividing: a zero vector stays zero. */
const MIN_NORM = 1e-8;

export async function computeRouters(plan: MoePlan, mode: MoeGateMode, options: GateOptions): Promise<Float32Array[]> {
  const L = plan.layers;
  const H = plan.hidden;
  const E = plan.gated.length;
  const routers = Array.from({ length: L }, () => new Float32Array(E * H));
  if (mode === 'random' || mode === 'uniform_random') {
    const stream = randomStream(options.seed, `moe-router-${mode}`);
    const scale = Math.sqrt(1 / H);
    // Drawn in mergekit's [layer, expert, hidden] order.
    for (const router of routers) {
      for (let i = 0; i < router.length; i++) router[i] = mode === 'random' ? stream.normal() : (stream.uniform() * 2 - 1) * scale;
    }
    return routers;
  }
  const vectors = mode === 'cheap_embed' ? await embeddingVectors(plan, options) : await hiddenVectors(plan, mode === 'hidden_avg', options);
  vectors.forEach((perLayer, e) => {
    for (let layer = 0; layer < L; layer++) {
      const v = perLayer[layer];
      let norm = 0;
      for (let i = 0; i < H; i++) norm += v[i] * v[i];
      const scale = 1 / Math.max(Math.sqrt(norm), MIN_NORM);
      for (let i = 0; i < H; i++) routers[layer][e * H + i] = v[i] * scale;
    }
  });
  return routers;
}

/** Per gated expert, per layer: positive minus negative representation (float64, not yet normalised). */
type ExpertVectors = Float64Array[][];

async function embeddingVectors(plan: MoePlan, options: GateOptions): Promise<ExpertVectors> {
  const H = plan.hidden;
  const weights = await ModelWeights.open(plan.base.folder);
  try {
    const info = weights.info('model.embed_tokens.weight', [plan.base.tensors!.tensors.get('model.embed_tokens.weight')!.shape[0], H]);
    const rows = new Map<number, Float32Array>();
    const row = async (id: number): Promise<Float32Array> => {
      let r = rows.get(id);
      if (!r) {
        if (id < 0 || id >= info.shape[0]) throw new RangeError(`token id ${id} is outside the embedding matrix (${info.shape[0]} rows)`);
        r = await weights.readRows(info, id, id + 1);
        rows.set(id, r);
      }
      return r;
    };
    const unitSum = async (prompts: readonly (readonly number[])[]): Promise<Float64Array> => {
      const sum = new Float64Array(H);
      for (const ids of prompts) for (const id of ids) {
        const r = await row(id);
        for (let i = 0; i < H; i++) sum[i] += r[i];
      }
      let norm = 0;
      for (let i = 0; i < H; i++) norm += sum[i] * sum[i];
      const scale = 1 / Math.max(Math.sqrt(norm), MIN_NORM);
      for (let i = 0; i < H; i++) sum[i] *= scale;
      return sum;
    };
    const out: ExpertVectors = [];
    for (const [e, g] of plan.gated.entries()) {
      if (options.signal?.aborted) throw new MoeCancelledError();
      const v = await unitSum(g.positive);
      if (g.negative.length > 0) {
        const n = await unitSum(g.negative);
        for (let i = 0; i < H; i++) v[i] -= n[i];
      }
      out.push(Array.from({ length: plan.layers }, () => v));
      options.onProgress?.(e + 1, plan.gated.length);
    }
    return out;
  } finally {
    await weights.close();
  }
}

/**
 * Hidden states of the base model on every prompt, in batches of `promptBatch` (each batch reads
 * the model's weights once, layer by layer). Each prompt contributes one vector per layer — its
 * last token's, or its tokens' mean — and an expert's vector is the mean over its prompts.
 */
async function hiddenVectors(plan: MoePlan, average: boolean, options: GateOptions): Promise<ExpertVectors> {
  const H = plan.hidden;
  const L = plan.layers;
  const prompts: { expert: number; sign: 1 | -1; ids: readonly number[] }[] = [];
  plan.gated.forEach((g: GatedExpert, e) => {
    for (const ids of g.positive) prompts.push({ expert: e, sign: 1, ids });
    for (const ids of g.negative) prompts.push({ expert: e, sign: -1, ids });
  });
  const out: ExpertVectors = plan.gated.map(() => Array.from({ length: L }, () => new Float64Array(H)));
  const model = await ForwardModel.open(plan.base.folder);
  try {
    const batch = Math.max(1, options.promptBatch);
    for (let start = 0; start < prompts.length; start += batch) {
      if (options.signal?.aborted) throw new MoeCancelledError();
      const part = prompts.slice(start, start + batch);
      const result = await model.run(
        part.map((p) => p.ids),
        { hiddenStates: average ? true : 'last', padding: 'right', blockBytes: options.blockBytes, signal: options.signal },
      );
      const T = result.tokens;
      part.forEach((p, b) => {
        const g = plan.gated[p.expert];
        const count = p.sign > 0 ? g.positive.length : g.negative.length;
        for (let layer = 0; layer < L; layer++) {
          const h = result.hiddenStates![layer];
          const acc = out[p.expert][layer];
          if (average) {
            const n = p.ids.length;
            const weight = p.sign / (count * n);
            for (let t = 0; t < n; t++) {
              const off = (b * T + t) * H;
              for (let i = 0; i < H; i++) acc[i] += weight * h[off + i];
            }
          } else {
            const weight = p.sign / count;
            for (let i = 0; i < H; i++) acc[i] += weight * h[b * H + i];
          }
        }
      });
      options.onProgress?.(Math.min(prompts.length, start + batch), prompts.length);
      // Let the event loop breathe between batches (the app's worker answers its messages).
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  } finally {
    await model.close();
  }
  return out;
}
