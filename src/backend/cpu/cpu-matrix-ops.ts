import type { AttentionShape, GatedActivationKind, MatrixOps } from '../matrix-ops';
import { applyRope, causalAttention, gatedActivation, geluExact, geluTanh, matmul, matmulTransposed, rmsNorm, silu } from './matrix-reference';

const ACTIVATIONS: Readonly<Record<GatedActivationKind, (x: number) => number>> = { silu, gelu_tanh: geluTanh, gelu: geluExact };

/**
 * The CPU reference of `MatrixOps` (docs/model.md §7): the plain-JavaScript functions of
 * matrix-reference.ts. Every CPU backend (JavaScript, SIMD, worker pool) uses it: the forward
 * pass spends its time in matmulTransposed, whose loops are already blocked for the cache.
 */
export const cpuMatrixOps: MatrixOps = {
  name: 'cpu',
  async matmulTransposed(x, rows, inDim, w, outDim, bias) {
    const y = new Float32Array(rows * outDim);
    matmulTransposed(x, rows, inDim, w, outDim, y, outDim, 0, bias);
    return y;
  },
  async matmul(a, b, m, k, n) {
    return matmul(a, b, m, k, n);
  },
  async rmsNorm(x, rows, dim, weight, eps, offset) {
    return rmsNorm(x, rows, dim, weight, eps, offset);
  },
  async rope(x, tokens, heads, headDim, positions, invFreq, attentionScaling) {
    const out = x.slice(0, tokens * heads * headDim);
    applyRope(out, tokens, heads, headDim, positions, invFreq, attentionScaling);
    return out;
  },
  async gatedActivation(gate, up, activation) {
    const out = gate.slice();
    gatedActivation(out, up, ACTIVATIONS[activation]);
    return out;
  },
  async attention(q, k, v, valid, shape: AttentionShape) {
    const { batch, tokens: T, heads, kvHeads, headDim } = shape;
    const qDim = heads * headDim;
    const kvDim = kvHeads * headDim;
    const out = new Float32Array(batch * T * qDim);
    for (let b = 0; b < batch; b++) {
      causalAttention(
        q.subarray(b * T * qDim, (b + 1) * T * qDim),
        k.subarray(b * T * kvDim, (b + 1) * T * kvDim),
        v.subarray(b * T * kvDim, (b + 1) * T * kvDim),
        T, heads, kvHeads, headDim,
        Array.from(valid.subarray(b * T, (b + 1) * T), (x) => x !== 0),
        shape.scale, shape.softcap,
        out.subarray(b * T * qDim, (b + 1) * T * qDim),
      );
    }
    return out;
  },
};
