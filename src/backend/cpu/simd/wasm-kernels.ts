/** The exports of the AssemblyScript kernels (assembly/kernels.ts); pointers are byte offsets. */
export interface Kernels {
  readonly memory: WebAssembly.Memory;
  heapBase(): number;
  decodeBf16(src: number, dst: number, n: number): void;
  decodeF16(src: number, dst: number, n: number): void;
  encodeBf16(src: number, dst: number, n: number): void;
  encodeF16(src: number, dst: number, n: number): void;
  binaryVV(op: number, a: number, aBf16: number, b: number, bBf16: number, o: number, n: number): void;
  binaryVS(op: number, a: number, s: number, o: number, n: number): void;
  binarySV(op: number, s: number, b: number, o: number, n: number): void;
  compareVV(op: number, a: number, b: number, o: number, n: number): void;
  compareVS(op: number, a: number, s: number, o: number, n: number): void;
  compareSV(op: number, s: number, b: number, o: number, n: number): void;
  unary(op: number, a: number, o: number, n: number): void;
  where(c: number, aPtr: number, as: number, bPtr: number, bs: number, o: number, n: number): void;
  fill(o: number, n: number, value: number): void;
  accumulate1(o: number, first: number, x: number, xBf16: number, xm: number, xmBf16: number, wPtr: number, w: number, n: number): void;
  accumulate2(
    o: number, first: number,
    x: number, xBf16: number, xm: number, xmBf16: number, wxPtr: number, wx: number,
    y: number, yBf16: number, ym: number, ymBf16: number, wyPtr: number, wy: number,
    n: number,
  ): void;
  sum(x: number, n: number, mask: number): number;
  dot(x: number, y: number, n: number): number;
  chains(table: number, dotPairs: number, sumPairs: number, n: number, out: number): void;
  gram(table: number, count: number, n: number, out: number): void;
  rowSums(x: number, rows: number, cols: number, out: number): void;
  rowSumBroadcast(x: number, rows: number, cols: number, o: number): void;
  periodicSums(x: number, n: number, j0: number, period: number, sums: number): void;
  periodic(values: number, period: number, j0: number, o: number, n: number): void;
  perRow(values: number, rows: number, cols: number, o: number): void;
  magnitudeHistogram(x: number, xBf16: number, xm: number, xmBf16: number, n: number, high: number, hist: number): void;
  sparseBins(hist: number, n: number, bins: number, counts: number): number;
  keepTop(x: number, xBf16: number, xm: number, xmBf16: number, o: number, n: number, t: number, tiesBefore: number, tiesAllowed: number): number;
  signConsensus2(x0: number, x1: number, o: number, n: number, s0: number, s1: number, w0: number, w1: number, normalize: number): void;
  signConsensus3(x0: number, x1: number, x2: number, o: number, n: number, s0: number, s1: number, s2: number, w0: number, w1: number, w2: number, normalize: number): void;
  signConsensusKept(t: number, count: number, bf16: number, o: number, n: number, s0: number, s1: number, s2: number, w0: number, w1: number, w2: number, normalize: number): void;
  signConsensusN(terms: number, scales: number, weights: number, count: number, o: number, n: number, normalize: number): void;
  random(o: number, n: number, base: number): void;
  rowRanks(x: number, o: number, rows: number, cols: number, scratch: number): void;
  rowRanksGreater(x: number, y: number, o: number, rows: number, cols: number, steps: number, count: number, scratch: number): void;
  keepBelow(x: number, xBf16: number, xm: number, xmBf16: number, o: number, bits: number, n: number, below: number, base: number, d: number): void;
  keepBits(x: number, xBf16: number, xm: number, xmBf16: number, bits: number, o: number, n: number): void;
  keepBelowSums(table: number, count: number, bf16: number, n: number, out: number): void;
  packMask(x: number, o: number, n: number): void;
  unpackMask(x: number, o: number, n: number): void;
  countNonFinite(p: number, n: number, size: number, exp: number, mant: number, out: number): void;
}

// Operation codes shared with assembly/kernels.ts.
export const ADD = 0, SUB = 1, MUL = 2, DIV = 3;
export const MIN = 0, MAX = 1, GT = 2, GE = 3, EQ = 4;
export const NEG = 0, ABS = 1, SIGN = 2, SQRT = 3;

function base64Bytes(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Smallest module using a v128 instruction: whether this engine has WebAssembly SIMD. */
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

export function hasWasmSimd(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

let compiled: Promise<WebAssembly.Module> | null = null;

/**
 * A fresh instance of the kernels, with its own memory. The module is compiled once per JS realm
 * (thread); the generated module is imported lazily so code that never runs the SIMD backend
 * never decodes it.
 */
export async function instantiateKernels(): Promise<Kernels> {
  compiled ??= import('./kernels-wasm.generated')
    .then(({ KERNELS_WASM_BASE64 }) => WebAssembly.compile(base64Bytes(KERNELS_WASM_BASE64)))
    .catch((error: unknown) => {
      compiled = null;
      throw error;
    });
  const instance = await WebAssembly.instantiate(await compiled, {
    env: {
      abort(): never {
        throw new Error('internal: the SIMD kernels aborted');
      },
    },
  });
  return instance.exports as unknown as Kernels;
}
