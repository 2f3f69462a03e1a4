import type { FloatDtype } from '../storage/types';
import type { Binding } from './command-recorder';
import type { Generated } from './kernels';

/**
 * Lazy elementwise expressions of one chunk, compiled to fused WGSL kernels (elementwise.wgsl).
 *
 * Every elementwise ChunkOps operation returns a `LazyVec` that only records what to compute.
 * When a result is needed — by a reduction, an operation that is not elementwise, or the output —
 * the backend compiles the expression graph below it into one kernel that computes every node
 * once per element (a `let`), reading only the graph's leaves: the chunk's raw input bytes
 * (decoded in place), per-row and periodic value tables, and buffers of results that had to be
 * materialized. Intermediate vectors therefore never occupy GPU memory, and a method's chain of
 * operations costs one pass over memory instead of one per operation.
 */

export type Operand = LazyVec | number;

export const UNARY = { neg: 0, abs: 1, sign: 2, sqrt: 3, exp: 4, log: 5 } as const;
export const BINARY = { add: 0, sub: 1, mul: 2, div: 3, min: 4, max: 5, gt: 6, ge: 7, eq: 8 } as const;

/** A buffer an expression reads per element. */
export type Leaf =
  /** f32 values, element i at [i]. */
  | { readonly kind: 'values'; readonly buffer: GPUBuffer; readonly size: number }
  /** The stored bytes of an input (u32 words), decoded where read. */
  | { readonly kind: 'raw'; readonly buffer: GPUBuffer; readonly size: number; readonly dtype: FloatDtype }
  /** One f32 per row: element i reads [i / cols]. */
  | { readonly kind: 'rows'; readonly buffer: GPUBuffer; readonly size: number }
  /** `period` f32 values: element i reads [(startMod + i) mod period]. */
  | { readonly kind: 'periodic'; readonly buffer: GPUBuffer; readonly size: number; readonly period: number; readonly startMod: number };

export type Expr =
  | { readonly kind: 'leaf'; readonly leaf: Leaf }
  | { readonly kind: 'fill'; readonly value: number }
  | { readonly kind: 'random'; readonly key: number }
  | { readonly kind: 'unary'; readonly op: number; readonly a: LazyVec }
  | { readonly kind: 'binary'; readonly op: number; readonly a: Operand; readonly b: Operand }
  | { readonly kind: 'where'; readonly cond: LazyVec; readonly a: Operand; readonly b: Operand }
  /** init + Σ weights[j]·terms[j], one rounding per term (weightedSum). */
  | { readonly kind: 'wsum'; readonly init: LazyVec | null; readonly terms: readonly LazyVec[]; readonly weights: readonly Operand[] }
  | {
      readonly kind: 'consensus';
      readonly terms: readonly LazyVec[];
      readonly scales: readonly number[];
      readonly weights: readonly number[] | null;
    }
  /** keepTopMagnitude when every tie of the chunk is kept, or none is. */
  | { readonly kind: 'keep'; readonly x: LazyVec; readonly tbits: number; readonly keepTies: boolean };

/** A chunk-sized f32 vector of the WebGPU backend: an expression, and once computed, its buffer. */
export class LazyVec {
  /** Set when the value was written to a buffer that stays valid for the rest of the chunk. */
  materialized: Binding | null = null;
  constructor(readonly expr: Expr) {}

  /** The buffer holding the values without computing anything, if there is one. */
  get buffer(): Binding | null {
    if (this.materialized) return this.materialized;
    const e = this.expr;
    return e.kind === 'leaf' && e.leaf.kind === 'values' ? { binding: 0, buffer: e.leaf.buffer, size: e.leaf.size } : null;
  }
}

/** Uniform words a fused kernel has for scalars (elementwise.wgsl: 14 vec4). */
export const FUSED_WORDS = 56;
/** Header words of the fused kernel's uniform block before `words`. */
export const FUSED_HEADER_WORDS = 8;

export interface FusedKernel {
  readonly generated: Generated;
  /** Leaf buffers, bound from binding 2 on. */
  readonly bindings: Binding[];
  /** Scalars for the uniform `words`, in order. */
  readonly words: readonly { readonly value: number; readonly type: 'f32' | 'u32' }[];
}

export type Compiled = { readonly kernel: FusedKernel } | { readonly split: LazyVec };

function children(e: Expr): LazyVec[] {
  const vecs = (ops: readonly (Operand | null)[]): LazyVec[] => ops.filter((o): o is LazyVec => o instanceof LazyVec);
  switch (e.kind) {
    case 'leaf':
    case 'fill':
    case 'random':
      return [];
    case 'unary':
      return [e.a];
    case 'binary':
      return vecs([e.a, e.b]);
    case 'where':
      return vecs([e.cond, e.a, e.b]);
    case 'wsum':
      return vecs([e.init, ...e.terms, ...e.weights]);
    case 'consensus':
      return [...e.terms];
    case 'keep':
      return [e.x];
  }
}

/** True when `v` is read from a buffer as it is (no operation of its own in a kernel). */
function isLeaf(v: LazyVec): boolean {
  return v.materialized !== null || v.expr.kind === 'leaf';
}

/**
 * Compiles the graph below `root` into one kernel, or names a node that must be materialized
 * first because the graph needs more storage buffers or uniform words than one kernel has.
 */
export function compileFused(root: LazyVec, maxBuffers: number): Compiled {
  const names = new Map<LazyVec, string>();
  const body: string[] = [];
  const decls: string[] = [];
  const bindings: Binding[] = [];
  const bindingOf = new Map<string, number>();
  const words: { value: number; type: 'f32' | 'u32' }[] = [];

  const word = (value: number, type: 'f32' | 'u32'): number => {
    words.push({ value, type });
    return words.length - 1;
  };
  const scalar = (value: number): string => `sc(${word(value, 'f32')}u)`;
  const bind = (buffer: GPUBuffer, size: number, type: 'f32' | 'u32'): string => {
    const key = `${type}:${bufferId(buffer)}`;
    let binding = bindingOf.get(key);
    if (binding === undefined) {
      binding = 2 + bindings.length;
      bindingOf.set(key, binding);
      bindings.push({ binding, buffer, size });
      decls.push(`@group(0) @binding(${binding}) var<storage, read> b${binding}: array<${type}>;`);
    }
    return `b${binding}`;
  };

  const visit = (v: LazyVec): string => {
    const known = names.get(v);
    if (known) return known;
    // Operands first, so that they are declared before this node.
    if (!v.materialized) for (const c of children(v.expr)) visit(c);
    const name = `v${names.size}`;
    const operand = (o: Operand): string => (o instanceof LazyVec ? visit(o) : scalar(o));
    let line: string;
    if (v.materialized) {
      line = `let ${name} = ${bind(v.materialized.buffer, v.materialized.size, 'f32')}[i];`;
    } else {
      const e = v.expr;
      switch (e.kind) {
        case 'leaf': {
          const l = e.leaf;
          if (l.kind === 'values') line = `let ${name} = ${bind(l.buffer, l.size, 'f32')}[i];`;
          else if (l.kind === 'rows') line = `let ${name} = ${bind(l.buffer, l.size, 'f32')}[i / P.cols];`;
          else if (l.kind === 'periodic') {
            const b = bind(l.buffer, l.size, 'f32');
            const start = word(l.startMod, 'u32');
            const period = word(l.period, 'u32');
            line = `let ${name} = ${b}[(word(${start}u) + i % word(${period}u)) % word(${period}u)];`;
          } else {
            const b = bind(l.buffer, l.size, 'u32');
            line =
              l.dtype === 'F32'
                ? `let ${name} = bitcast<f32>(${b}[i]);`
                : `let ${name} = ${l.dtype === 'BF16' ? 'bf16_at' : 'f16_at'}(${b}[i >> 1u], i);`;
          }
          break;
        }
        case 'fill':
          line = `let ${name} = ${scalar(e.value)};`;
          break;
        case 'random':
          line = `let ${name} = random_at(word(${word(e.key, 'u32')}u), i);`;
          break;
        case 'unary':
          line = `let ${name} = unary_fn(${e.op}u, ${visit(e.a)});`;
          break;
        case 'binary':
          line = `let ${name} = binary_fn(${e.op}u, ${operand(e.a)}, ${operand(e.b)});`;
          break;
        case 'where': {
          const c = visit(e.cond);
          line = `let ${name} = select(${operand(e.b)}, ${operand(e.a)}, is_true(${c}));`;
          break;
        }
        case 'wsum': {
          const acc = `a${name}`;
          const lines = [`var ${acc} = ${e.init ? visit(e.init) : '0.0'};`];
          e.terms.forEach((t, j) => {
            const x = visit(t);
            const w = e.weights[j];
            if (w instanceof LazyVec) {
              lines.push(`${acc} = mul_add(${visit(w)}, ${x}, ${acc});`);
            } else {
              // The CPU multiplies by the f64 weight: pass it as hi + lo.
              const hi = Math.fround(w);
              lines.push(`${acc} = mul_add_split(${scalar(hi)}, ${scalar(Number.isFinite(hi) ? w - hi : 0)}, ${x}, ${acc});`);
            }
          });
          lines.push(`let ${name} = ${acc};`);
          line = lines.join('\n  ');
          break;
        }
        case 'consensus': {
          const terms = e.terms.map(visit);
          const w = terms.map((t, j) => `w${name}_${j}`);
          const lines = terms.map((t, j) => `let ${w[j]} = ${scalar(e.scales[j])} * ${t};`);
          lines.push(`var t${name} = vec2<f32>(0.0, 0.0);`);
          for (const wj of w) lines.push(`t${name} = df_add(t${name}, ${wj});`);
          lines.push(`let g${name} = elected_sign(t${name});`);
          lines.push(`var m${name} = vec2<f32>(0.0, 0.0);`, `var d${name} = vec2<f32>(0.0, 0.0);`);
          w.forEach((wj, j) => lines.push(`agree(&m${name}, &d${name}, ${wj}, g${name}, ${scalar(e.weights ? e.weights[j] : 0)});`));
          lines.push(`let ${name} = consensus_result(m${name}, d${name}, ${e.weights ? 'true' : 'false'});`);
          line = lines.join('\n  ');
          break;
        }
        case 'keep':
          line = `let ${name} = keep_magnitude(${visit(e.x)}, word(${word(e.tbits, 'u32')}u), ${e.keepTies});`;
          break;
      }
    }
    names.set(v, name);
    body.push(line);
    return name;
  };

  const result = visit(root);
  if (bindings.length > maxBuffers - 1 || words.length > FUSED_WORDS) return { split: heaviestChild(root) };
  body.push(`let result = ${result};`);
  const snippets = { DECLS: decls.join('\n'), BODY: body.join('\n  ') };
  return { kernel: { generated: { key: `${snippets.DECLS}\n${snippets.BODY}`, snippets }, bindings, words } };
}

/** The operand of `root` whose graph reads the most buffers and scalars (materialized first). */
function heaviestChild(root: LazyVec): LazyVec {
  let best: LazyVec | null = null;
  let bestCost = -1;
  for (const child of children(root.expr)) {
    if (isLeaf(child)) continue;
    const cost = graphCost(child);
    if (cost > bestCost) {
      best = child;
      bestCost = cost;
    }
  }
  if (!best) throw new Error('internal: a fused WebGPU kernel needs more bindings than the device allows');
  return best;
}

/** Distinct leaves plus scalar-carrying nodes below `v` (a measure of what a kernel must bind). */
function graphCost(v: LazyVec): number {
  const seen = new Set<LazyVec>();
  const walk = (x: LazyVec): void => {
    if (seen.has(x)) return;
    seen.add(x);
    if (!isLeaf(x)) for (const c of children(x.expr)) walk(c);
  };
  walk(v);
  return seen.size;
}

const ids = new WeakMap<GPUBuffer, number>();
let nextId = 0;
function bufferId(buffer: GPUBuffer): number {
  let id = ids.get(buffer);
  if (id === undefined) ids.set(buffer, (id = nextId++));
  return id;
}
