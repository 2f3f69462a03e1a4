import type { FloatDtype } from '../../storage/types';
import type { BackendChunk, ChunkInputBytes, ChunkNonFinite, ChunkSpec } from '../compute-backend';
import type { Partial, ReductionKind, ReductionToken } from '../reduction';
import type { ChunkOps, Operand, Reduction, Vec } from '../types';
import { wireNumber, type Arg, type ChunkResult, type ChunkResultKind, type GraphNode, type OpName } from './protocol';

/** What a recorded chunk asks of its pool once the method has said what it wants. */
export interface ChunkRunner {
  run(
    spec: ChunkSpec,
    inputs: readonly ChunkInputBytes[],
    nodes: readonly GraphNode[],
    roots: readonly number[],
    result: ChunkResultKind,
  ): Promise<ChunkResult>;
}

/** A vector of a recorded chunk: the id of the node that computes it. */
class Handle {
  constructor(readonly id: number) {}
}
/** A reduction of a recorded chunk: a ReductionToken whose partial is its node id. */
interface RecordedToken extends ReductionToken {
  readonly partial: number;
}

/**
 * The main-thread side of a pooled chunk: the method's callback runs here (it is a closure over
 * the main thread's state), and every op only appends a node to a graph. readPartials/encode send
 * the graph to a worker, which computes it. Per-row values are cut to the chunk's rows.
 */
export class RecordingChunk implements BackendChunk, ChunkOps {
  readonly ops: ChunkOps = this;
  readonly chunkIndex: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
  private readonly nodes: GraphNode[] = [];
  private readonly inputNodes = new Map<number, Vec>();
  private sent = false;
  private counts: ChunkNonFinite | null = null;
  private share = 0;

  constructor(
    private readonly spec: ChunkSpec,
    private readonly inputs: readonly ChunkInputBytes[],
    private readonly runner: ChunkRunner,
  ) {
    this.chunkIndex = spec.chunkIndex;
    this.start = spec.start;
    this.length = spec.length;
    this.rowStart = spec.rowStart;
    this.rows = spec.rows;
    this.cols = spec.cols;
  }

  private node(op: OpName, args: Arg[]): number {
    if (this.sent) throw new Error('internal: a pooled chunk was used after it was computed');
    this.nodes.push({ op, args });
    return this.nodes.length - 1;
  }
  private vec(op: OpName, ...args: (Operand | Arg)[]): Vec {
    return new Handle(this.node(op, args.map(toArg))) as unknown as Vec;
  }
  private reduction<T extends number | Float64Array>(kind: ReductionKind, op: OpName, ...args: (Operand | Arg)[]): Reduction<T> {
    const token: RecordedToken = { kind, partial: this.node(op, args.map(toArg)) };
    return token as unknown as Reduction<T>;
  }

  input(i: number): Vec {
    if (!this.inputs[i]) throw new Error(`internal: chunk has no input ${i}`);
    let v = this.inputNodes.get(i);
    if (!v) this.inputNodes.set(i, (v = this.vec('input', i)));
    return v;
  }
  add(a: Operand, b: Operand): Vec { return this.vec('add', a, b); }
  sub(a: Operand, b: Operand): Vec { return this.vec('sub', a, b); }
  mul(a: Operand, b: Operand): Vec { return this.vec('mul', a, b); }
  div(a: Operand, b: Operand): Vec { return this.vec('div', a, b); }
  min(a: Operand, b: Operand): Vec { return this.vec('min', a, b); }
  max(a: Operand, b: Operand): Vec { return this.vec('max', a, b); }
  neg(a: Vec): Vec { return this.vec('neg', a); }
  abs(a: Vec): Vec { return this.vec('abs', a); }
  sign(a: Vec): Vec { return this.vec('sign', a); }
  sqrt(a: Vec): Vec { return this.vec('sqrt', a); }
  gt(a: Operand, b: Operand): Vec { return this.vec('gt', a, b); }
  ge(a: Operand, b: Operand): Vec { return this.vec('ge', a, b); }
  eq(a: Operand, b: Operand): Vec { return this.vec('eq', a, b); }
  where(cond: Vec, a: Operand, b: Operand): Vec { return this.vec('where', cond, a, b); }
  weightedSum(terms: readonly Vec[], weights: readonly Operand[]): Vec {
    return this.vec('weightedSum', terms as unknown as Arg, weights as unknown as Arg);
  }
  random(stream: number): Vec { return this.vec('random', stream); }
  perRow(values: Float64Array): Vec {
    // Only this chunk's rows travel; the worker puts them back at their global row index.
    return this.vec('perRow', values.slice(this.rowStart, this.rowStart + this.rows));
  }
  sum(a: Vec): Reduction<number> { return this.reduction('sum', 'sum', a); }
  rowSums(a: Vec): Reduction<Float64Array> { return this.reduction('rowSums', 'rowSums', a); }
  chunkSums(a: Vec): Reduction<Float64Array> { return this.reduction('chunkSums', 'chunkSums', a); }
  magnitudeHistogram(a: Vec, high: number | null): Reduction<Float64Array> {
    return this.reduction('histogram', 'magnitudeHistogram', a, high);
  }
  keepTopMagnitude(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec {
    return this.vec('keepTopMagnitude', a, threshold, tiesBefore, tiesAllowed);
  }
  signConsensus(terms: readonly Vec[], scales: readonly number[], weights: readonly number[] | null): Vec {
    return this.vec('signConsensus', terms as unknown as Arg, [...scales], weights ? [...weights] : null);
  }
  rowRanks(a: Vec): Vec { return this.vec('rowRanks', a); }
  exp(a: Vec): Vec { return this.vec('exp', a); }
  log(a: Vec): Vec { return this.vec('log', a); }
  dot(a: Vec, b: Vec): Reduction<number> { return this.reduction('sum', 'dot', a, b); }
  rowMaxBroadcast(a: Vec): Vec { return this.vec('rowMaxBroadcast', a); }
  rowSumBroadcast(a: Vec): Vec { return this.vec('rowSumBroadcast', a); }
  periodicSums(a: Vec, period: number): Reduction<Float64Array> {
    return this.reduction('periodicSums', 'periodicSums', a, period);
  }
  periodic(values: Float64Array): Vec { return this.vec('periodic', values.slice()); }

  async readPartials(tokens: readonly ReductionToken[]): Promise<Partial[]> {
    const roots = tokens.map((t) => (t as RecordedToken).partial);
    return (await this.send(roots, { kind: 'partials' })).partials!;
  }

  async encode(v: Vec, dtype: FloatDtype): Promise<Uint8Array> {
    return (await this.send([handleId(v)], { kind: 'encode', dtype })).bytes!;
  }

  release(): void {
    // The worker frees its vectors itself once the chunk is computed.
  }

  nonFinite(): ChunkNonFinite {
    if (!this.counts) throw new Error('internal: NaN/Inf counts of a pooled chunk asked before it was computed');
    return this.counts;
  }

  readShare(): number {
    return this.share;
  }

  private async send(roots: number[], result: ChunkResultKind) {
    if (this.sent) throw new Error('internal: a pooled chunk was computed twice');
    this.sent = true;
    const answer = await this.runner.run(this.spec, this.inputs, this.nodes, roots, result);
    this.counts = answer.nonFinite;
    this.share = answer.readShare ?? 0;
    return answer;
  }
}

function handleId(v: Vec): number {
  if (!(v instanceof Handle)) throw new Error('internal: a vector of another chunk or backend was used in a pooled chunk');
  return v.id;
}

/** Handles become `{ v: id }`, recursively through arrays (weightedSum terms…). */
function toArg(x: Operand | Arg): Arg {
  if (typeof x === 'number') return wireNumber(x);
  if (x === null) return x;
  if (x instanceof Handle) return { v: x.id };
  if (ArrayBuffer.isView(x)) return x;
  if (Array.isArray(x)) return x.map(toArg);
  throw new Error('internal: a vector of another chunk or backend was used in a pooled chunk');
}
