/**
 * The forward pass's CPU reference arithmetic, kept here under its old name for callers of
 * `ops` (the functions live with the CPU backend: docs/model.md §7).
 */
import { matrixReference } from '../backend';

export const {
  matmulTransposed,
  matmul,
  rmsNorm,
  softmaxInPlace,
  applyRope,
  silu,
  geluTanh,
  geluExact,
  gatedActivation,
  softcap,
  addInPlace,
  causalAttention,
} = matrixReference;
