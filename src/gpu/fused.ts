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
  const writer = new FusedKernelWriter();
  const result = writer.value(root);
  if (writer.bindings.length > maxBuffers - 1 || writer.words.length > FUSED_WORDS) return { split: heaviestChild(root) };
  return { kernel: writer.kernel(result) };
}

/**
 * Writes one fused kernel: a `let` per graph node in operand order, a storage binding per distinct
 * leaf buffer, a uniform word per scalar, all numbered in the order the graph is walked.
 */
class FusedKernelWriter {
  readonly bindings: Binding[] = [];
  readonly words: { value: number; type: 'f32' | 'u32' }[] = [];
  private readonly names = new Map<LazyVec, string>();
  private readonly body: string[] = [];
  private readonly decls: string[] = [];
  private readonly bindingOf = new Map<string, number>();

  /** The kernel whose result is the node named `result`. */
  kernel(result: string): FusedKernel {
    const snippets = { DECLS: this.decls.join('\n'), BODY: [...this.body, `let result = ${result};`].join('\n  ') };
    return { generated: { key: `${snippets.DECLS}\n${snippets.BODY}`, snippets }, bindings: this.bindings, words: this.words };
  }

  /** The name of `v` in the kernel; the first use writes its line (after its operands' lines). */
  value(v: LazyVec): string {
    const known = this.names.get(v);
    if (known) return known;
    // Operands first, so that they are declared before this node.
    if (!v.materialized) for (const c of children(v.expr)) this.value(c);
    const name = `v${this.names.size}`;
    const line = v.materialized
      ? `let ${name} = ${this.bind(v.materialized.buffer, v.materialized.size, 'f32')}[i];`
      : this.line(name, v.expr);
    this.names.set(v, name);
    this.body.push(line);
    return name;
  }

  /** The WGSL that computes node `name` from its operands' names. */
  private line(name: string, e: Expr): string {
    switch (e.kind) {
      case 'leaf':
        return `let ${name} = ${this.leaf(e.leaf)};`;
      case 'fill':
        return `let ${name} = ${this.scalar(e.value)};`;
      case 'random':
        return `let ${name} = random_at(word(${this.word(e.key, 'u32')}u), i);`;
      case 'unary':
        return `let ${name} = unary_fn(${e.op}u, ${this.value(e.a)});`;
      case 'binary':
        return `let ${name} = binary_fn(${e.op}u, ${this.operand(e.a)}, ${this.operand(e.b)});`;
      case 'where': {
        const c = this.value(e.cond);
        return `let ${name} = select(${this.operand(e.b)}, ${this.operand(e.a)}, is_true(${c}));`;
      }
      case 'wsum':
        return this.weightedSum(name, e);
      case 'consensus':
        return this.consensus(name, e);
      case 'keep':
        return `let ${name} = keep_magnitude(${this.value(e.x)}, word(${this.word(e.tbits, 'u32')}u), ${e.keepTies});`;
    }
  }

  /** Element i of a leaf buffer, decoded from its stored dtype where it is raw. */
  private leaf(l: Leaf): string {
    if (l.kind === 'values') return `${this.bind(l.buffer, l.size, 'f32')}[i]`;
    if (l.kind === 'rows') return `${this.bind(l.buffer, l.size, 'f32')}[i / P.cols]`;
    if (l.kind === 'periodic') {
      const b = this.bind(l.buffer, l.size, 'f32');
      const start = this.word(l.startMod, 'u32');
      const period = this.word(l.period, 'u32');
      return `${b}[(word(${start}u) + i % word(${period}u)) % word(${period}u)]`;
    }
    const b = this.bind(l.buffer, l.size, 'u32');
    return l.dtype === 'F32' ? `bitcast<f32>(${b}[i])` : `${l.dtype === 'BF16' ? 'bf16_at' : 'f16_at'}(${b}[i >> 1u], i)`;
  }

  /** init + Σ weights[j]·terms[j] in an accumulator, one fused multiply-add per term. */
  private weightedSum(name: string, e: Extract<Expr, { kind: 'wsum' }>): string {
    const acc = `a${name}`;
    const lines = [`var ${acc} = ${e.init ? this.value(e.init) : '0.0'};`];
    e.terms.forEach((t, j) => {
      const x = this.value(t);
      const w = e.weights[j];
      if (w instanceof LazyVec) {
        lines.push(`${acc} = mul_add(${this.value(w)}, ${x}, ${acc});`);
      } else {
        // The CPU multiplies by the f64 weight: pass it as hi + lo.
        const hi = Math.fround(w);
        lines.push(`${acc} = mul_add_split(${this.scalar(hi)}, ${this.scalar(Number.isFinite(hi) ? w - hi : 0)}, ${x}, ${acc});`);
      }
    });
    lines.push(`let ${name} = ${acc};`);
    return lines.join('\n  ');
  }

  /** TIES-style sign consensus: scaled terms, the elected sign, then the agreeing terms combined. */
  private consensus(name: string, e: Extract<Expr, { kind: 'consensus' }>): string {
    const terms = e.terms.map((t) => this.value(t));
    const w = terms.map((t, j) => `w${name}_${j}`);
    const lines = terms.map((t, j) => `let ${w[j]} = ${this.scalar(e.scales[j])} * ${t};`);
    lines.push(`var t${name} = vec2<f32>(0.0, 0.0);`);
    for (const wj of w) lines.push(`t${name} = df_add(t${name}, ${wj});`);
    lines.push(`let g${name} = elected_sign(t${name});`);
    lines.push(`var m${name} = vec2<f32>(0.0, 0.0);`, `var d${name} = vec2<f32>(0.0, 0.0);`);
    w.forEach((wj, j) => lines.push(`agree(&m${name}, &d${name}, ${wj}, g${name}, ${this.scalar(e.weights ? e.weights[j] : 0)});`));
    lines.push(`let ${name} = consensus_result(m${name}, d${name}, ${e.weights ? 'true' : 'false'});`);
    return lines.join('\n  ');
  }

  private operand(o: Operand): string {
    return o instanceof LazyVec ? this.value(o) : this.scalar(o);
  }

  /** A uniform word holding `value`; its index. */
  private word(value: number, type: 'f32' | 'u32'): number {
    this.words.push({ value, type });
    return this.words.length - 1;
  }

  private scalar(value: number): string {
    return `sc(${this.word(value, 'f32')}u)`;
  }

  /** The storage binding of a buffer read as `type` (one per buffer and type); its WGSL name. */
  private bind(buffer: GPUBuffer, size: number, type: 'f32' | 'u32'): string {
    const key = `${type}:${bufferId(buffer)}`;
    let binding = this.bindingOf.get(key);
    if (binding === undefined) {
      binding = 2 + this.bindings.length;
      this.bindingOf.set(key, binding);
      this.bindings.push({ binding, buffer, size });
      this.decls.push(`@group(0) @binding(${binding}) var<storage, read> b${binding}: array<${type}>;`);
    }
    return `b${binding}`;
  }
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
