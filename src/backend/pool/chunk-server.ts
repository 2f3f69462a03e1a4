import type { BackendChunk, ChunkInputBytes } from '../compute-backend';
import { isSparseHistogram, type ReductionToken } from '../reduction';
import type { ChunkOps, Vec } from '../types';
import { isRef, neededNodes } from './graph';
import type { InThreadBackend, Kept } from './in-thread-backend';
import type { SharedFile } from '../../storage/types';
import type { TimedFileReads } from './timed-file-reads';
import {
  isNaNBits,
  leadingBuffer,
  wholeBuffer,
  wireNumber,
  type Arg,
  type ChunkRequest,
  type ChunkResponse,
  type ChunkResult,
  type ChunkResultKind,
  type GraphNode,
  type PoolRequest,
} from './protocol';

const EMPTY = new Uint8Array(0);

/**
 * The worker side of the pool: replays each chunk's graph on the in-thread backend, in the
 * order the requests arrive, and keeps the vectors the pool told it to keep for later passes.
 * What it holds is exactly what the pool's ledger says, because only the pool decides.
 */
export class ChunkServer {
  private readonly cache = new Map<string, Kept>();
  private queue: Promise<unknown> = Promise.resolve();
  /** The files the pool sent, by their numbers (WireFileRange), for the pool's lifetime. */
  private readonly sharedFiles = new Map<number, SharedFile>();

  /**
   * `files` reads the file ranges a request names (ChunkInputBytes.file), unless the backend reads
   * them itself (`local.readsFiles`, through `files.readInto`, for the files `files.direct` accepts).
   */
  constructor(
    private readonly local: InThreadBackend,
    private readonly files: TimedFileReads,
  ) {}

  /**
   * Handles chunk requests one after another; `reply` gets each answer and the buffers to
   * transfer. A recycled output buffer goes to the backend at once.
   */
  receive(request: PoolRequest, reply: (response: ChunkResponse, transfer: ArrayBuffer[]) => void): void {
    if (request.type === 'recycle') {
      this.local.backend.recycle?.(new Uint8Array(request.buffer));
      return;
    }
    if (request.type === 'forget') {
      this.queue = this.queue.then(() => this.forget(request.keys));
      return;
    }
    this.queue = this.queue.then(async () => {
      try {
        const { response, transfer } = await this.handle(request);
        reply(response, transfer);
      } catch (error) {
        // A failed chunk may have left the cache half-updated: the pool fails the merge anyway.
        this.clearCache();
        reply({ type: 'error', id: request.id, message: error instanceof Error ? error.message : String(error) }, []);
      }
    });
  }

  private async handle(request: ChunkRequest): Promise<{ response: ChunkResponse; transfer: ArrayBuffer[] }> {
    const start = performance.now();
    const readBefore = this.files.ms;
    const read: Uint8Array[] = [];
    for (const [number, file] of request.files) this.sharedFiles.set(number, file);
    const inputs: ChunkInputBytes[] = await Promise.all(
      request.inputs.map(async (wired) => {
        if (!wired) return { bytes: EMPTY, dtype: 'F32', cols: request.spec.cols };
        const { file, ...rest } = wired;
        const input: ChunkInputBytes = file ? { ...rest, file: { ...file, file: this.sharedFile(file.file) } } : rest;
        // A file the backend reads itself goes to it as the range; others are read here first.
        if (!input.file || (this.local.readsFiles && (await this.files.direct(input.file.file)))) return input;
        const bytes = await this.files.read(input.file);
        read.push(bytes);
        return { bytes, dtype: input.dtype, cols: input.cols, countNonFinite: input.countNonFinite };
      }),
    );
    const { bytes, partials, nonFinite } = await computeChunk(this.local.backend.beginChunk(request.spec, inputs), request.roots, request.result, (ops) =>
      this.evaluate(ops, request),
    );
    if (request.forgetHits) this.forget(request.hits.map(([, key]) => key));
    // The chunk is computed and released: its backend copied what it needed of the bytes read.
    for (const r of read) this.files.recycle(r);
    const busy = performance.now() - start;
    const readShare = busy > 0 ? Math.min(1, (this.files.ms - readBefore) / busy) : 0;
    if (bytes) {
      // Encoded into the start of a recycled buffer, or into a buffer of its own.
      const owned = leadingBuffer(bytes) ? bytes : bytes.slice();
      return { response: { type: 'result', id: request.id, bytes: owned, nonFinite, readShare }, transfer: [owned.buffer as ArrayBuffer] };
    }
    const transfer: ArrayBuffer[] = [];
    const owned = partials!.map((p) => {
      if (typeof p === 'number') return wireNumber(p);
      if (isSparseHistogram(p)) {
        transfer.push(p.bins.buffer as ArrayBuffer, p.counts.buffer as ArrayBuffer);
        return p;
      }
      const copy = ArrayBuffer.isView(p) && wholeBuffer(p as unknown as ArrayBufferView) ? p : Float64Array.from(p);
      transfer.push((copy as unknown as ArrayBufferView).buffer as ArrayBuffer);
      return copy;
    });
    return { response: { type: 'result', id: request.id, partials: owned, nonFinite, readShare }, transfer };
  }

  /** Evaluates the graph with the cached values the request names, and keeps what it says to keep. */
  private evaluate(ops: ChunkOps, request: ChunkRequest): unknown[] {
    const hits = new Map(request.hits);
    const { values, needed } = replay(ops, request.nodes, request.roots, hits, (key) => {
      const cached = this.cache.get(key);
      if (!cached) throw new Error(`internal: pool worker lost cached vector ${key}`);
      return this.local.use(ops, cached);
    });
    const bits = new Set(request.bitStores);
    for (const [id, key] of request.stores) {
      if (!needed[id]) continue;
      const old = this.cache.get(key);
      this.cache.set(key, this.local.keep(ops, values[id] as Vec, bits.has(id)));
      if (old) this.local.drop(old);
    }
    return values;
  }

  private sharedFile(number: number): SharedFile {
    const file = this.sharedFiles.get(number);
    if (!file) throw new Error(`internal: pool worker was never sent file ${number}`);
    return file;
  }

  private forget(keys: readonly string[]): void {
    for (const key of keys) {
      const kept = this.cache.get(key);
      if (!kept) continue;
      this.cache.delete(key);
      this.local.drop(kept);
    }
  }

  private clearCache(): void {
    this.forget([...this.cache.keys()]);
  }
}

/**
 * Evaluates the nodes the roots need on `ops`, in id order (arguments come first); nodes in
 * `hits` take their value from `cached` instead.
 */
function replay(
  ops: ChunkOps,
  nodes: readonly GraphNode[],
  roots: readonly number[],
  hits: ReadonlyMap<number, string>,
  cached: (key: string) => Vec,
): { values: unknown[]; needed: Uint8Array } {
  const needed = neededNodes(nodes, roots, new Set(hits.keys()));
  const values: unknown[] = new Array(nodes.length);
  for (let id = 0; id < nodes.length; id++) {
    if (!needed[id]) continue;
    const key = hits.get(id);
    values[id] = key !== undefined ? cached(key) : call(ops, nodes[id], values);
  }
  return { values, needed };
}

/**
 * Computes a chunk whose graph `evaluate` replays on its ops: the encoded root or the roots'
 * partials, with the NaN/±Inf the chunk counted (every in-thread backend counts). Releases it.
 */
async function computeChunk(
  chunk: BackendChunk,
  roots: readonly number[],
  result: ChunkResultKind,
  evaluate: (ops: ChunkOps) => unknown[],
): Promise<ChunkResult> {
  try {
    const values = evaluate(chunk.ops);
    const computed =
      result.kind === 'encode'
        ? { bytes: await chunk.encode(values[roots[0]] as Vec, result.dtype) }
        : { partials: await chunk.readPartials(roots.map((id) => values[id] as ReductionToken)) };
    if (!chunk.nonFinite) throw new Error('internal: a pool backend computed a chunk without counting its NaN/Inf');
    return { ...computed, nonFinite: chunk.nonFinite() };
  } finally {
    chunk.release();
  }
}

function call(ops: ChunkOps, node: GraphNode, values: unknown[]): unknown {
  const args = node.args.map((a) => resolve(a, values));
  if (node.op === 'perRow') {
    // The pool sent only this chunk's rows; the op indexes by global row.
    const rows = args[0] as Float64Array;
    const full = new Float64Array(ops.rowStart + rows.length);
    full.set(rows, ops.rowStart);
    return ops.perRow(full);
  }
  const fn = (ops as unknown as Record<string, (...a: unknown[]) => unknown>)[node.op];
  if (typeof fn !== 'function') throw new Error(`internal: pool worker got an unknown op ${node.op}`);
  return fn.apply(ops, args);
}

function resolve(arg: Arg, values: unknown[]): unknown {
  if (isRef(arg)) return values[arg.v];
  if (isNaNBits(arg)) return arg.nan[0];
  if (Array.isArray(arg)) return arg.map((a) => resolve(a, values));
  return arg;
}
