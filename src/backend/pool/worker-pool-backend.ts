import { countNonFinite } from '../../storage/non-finite';
import type { SharedFile } from '../../storage/types';
import type { BackendChunk, ChunkInputBytes, ChunkSpec, ComputeBackend } from '../compute-backend';
import { maskKeys, neededNodes } from './graph';
import { RecordingChunk, type ChunkRunner } from './recording-chunk';
import { isNaNBits, wholeBuffer, type ChunkRequest, type ChunkResponse, type ChunkResult, type ChunkResultKind, type GraphNode, type WireInput, type WorkerPort } from './protocol';
import { cpuMatrixOps } from '../cpu/cpu-matrix-ops';
import { heldBytesPerElement, packedMaskBytes } from '../cpu/simd';

export interface WorkerPoolOptions {
  /** Number of workers (at least 1). */
  readonly workers: number;
  /** Starts worker `index` (worker_threads in Node, a module Web Worker in the browser). */
  readonly spawn: (index: number) => WorkerPort;
  /** Computes chunks too small to be worth a message, on the calling thread (same code as the workers). */
  readonly local: ComputeBackend;
  /**
   * Memory all workers together may keep for later passes over a tensor (inputs, keep masks), in
   * bytes. 0 turns the cache off. Default 128 MiB.
   */
  readonly cacheBytes?: number;
  /**
   * Chunks of fewer elements run on the calling thread. Default 65536. Larger chunks all go to
   * the workers, even a linear merge's (a few ops per element): the calling thread has the
   * reading and writing to do, and in a browser a File's bytes are copied on the thread that
   * reads them. Computing half of a linear merge's chunks on that thread made it slower: 1.33
   * against 1.29 s in the CLI (3 × 337 MB, 2 threads), 4.1 against 3.2 s in the app.
   */
  readonly inThreadBelow?: number;
}

interface Pending {
  resolve(value: ChunkResult): void;
  reject(error: Error): void;
  /** The chunk's elements: the work it adds to its worker's queue (route). */
  readonly elements: number;
}

/** What the pool knows a worker's cache holds: it alone decides, so no question is ever asked. */
interface Ledger {
  bytes: number;
  /** What the worker holds, `job|chunk index|key`, and the bytes of each. */
  readonly keys: Map<string, number>;
}

/** Takes `keys` out of a ledger (the worker forgets them in the same order). */
function forgetKeys(ledger: Ledger, keys: readonly string[]): void {
  for (const key of keys) {
    ledger.bytes -= ledger.keys.get(key) ?? 0;
    ledger.keys.delete(key);
  }
}

interface PoolWorker {
  readonly port: WorkerPort;
  readonly pending: Map<number, Pending>;
  readonly ledger: Ledger;
  /** The numbers of the files this worker was sent (ChunkRequest.files). */
  readonly files: Set<number>;
}

export const DEFAULT_POOL_CACHE_BYTES = 128 * 1024 * 1024;

/**
 * The cross-pass cache a merge with memory budget `budgetBytes` gives its pool: half of it, which
 * holds what two tensors in flight keep (jobsInFlight). A quarter, for one tensor at a time, left
 * a third of model_stock's and DARE's output chunks reading their inputs again once two tensors
 * overlapped; with half, 3 × 337 MB model_stock took 1.38 s against 1.46 s (2 threads). The
 * whole budget took a large TIES or model_stock merge past 500 MiB of RSS; half keeps a large
 * dare_ties at 250 MiB.
 */
export function poolCacheBytes(budgetBytes: number): number {
  return Math.floor(budgetBytes / 2);
}

/**
 * The CPU backend on several cores. Methods' per-chunk callbacks are closures on the calling
 * thread, so a chunk is recorded there as a small graph of ops (RecordingChunk) and computed by a
 * worker that replays it on its in-thread backend. The engine keeps `workers + 1` chunks in
 * flight and finishes them in order; every op is computed by the same code as on one thread, so
 * the output bytes do not depend on the number of workers or the chunk size.
 *
 * Chunk k of a tensor goes to the same worker in every pass, and the worker keeps what does not
 * change between passes (its inputs, keep masks) within `cacheBytes`, so a multi-pass method
 * reads its inputs once.
 */
export class WorkerPoolBackend implements ComputeBackend, ChunkRunner {
  readonly name = 'cpu' as const;
  /** The JavaScript reference: the forward pass's time is in its cache-blocked matmul. */
  readonly matrix = cpuMatrixOps;
  readonly chunksInFlight: number;
  /**
   * Up to four tensors at once, two of them large (ComputeBackend.jobsInFlight): the next ones'
   * chunks fill the workers while this one's passes drain.
   */
  readonly jobsInFlight = 4;
  /** Workers count the NaN/±Inf of the bytes they receive and encode, off the engine's thread. */
  readonly countsNonFinite = true;
  private readonly workers: PoolWorker[];
  private readonly cachePerWorker: number;
  private readonly inThreadBelow: number;
  private nextId = 1;
  /** The worker whose chunk encoded the bytes in each buffer: where `recycle` sends it back. */
  private readonly encodedBy = new WeakMap<ArrayBuffer, PoolWorker>();
  private failure: Error | null = null;
  private disposed = false;
  /** The worker offset of each job begun and not ended (route). */
  private readonly jobOffsets = new Map<number, number>();
  private jobsSeen = 0;
  /** The number of each file a chunk read (WireFileRange): a source's file is one object for its merge. */
  private readonly fileNumbers = new WeakMap<SharedFile, number>();
  private nextFileNumber = 1;

  constructor(private readonly options: WorkerPoolOptions) {
    const count = Math.max(1, Math.floor(options.workers));
    this.chunksInFlight = count + 1;
    this.cachePerWorker = Math.floor((options.cacheBytes ?? DEFAULT_POOL_CACHE_BYTES) / count);
    this.inThreadBelow = options.inThreadBelow ?? 65536;
    this.workers = [];
    for (let i = 0; i < count; i++) {
      const worker: PoolWorker = { port: options.spawn(i), pending: new Map(), ledger: { bytes: 0, keys: new Map() }, files: new Set() };
      worker.port.listen(
        (message) => this.answer(worker, message),
        (error) => this.fail(new Error(`CPU worker ${i + 1} of ${count} stopped: ${error.message}. The merge cannot go on; try again with --threads 1 (CLI) or one thread (app settings).`, { cause: error })),
      );
      this.workers.push(worker);
    }
  }

  /** Number of workers. */
  get threads(): number {
    return this.workers.length;
  }

  /** The workers read the inputs of every chunk they compute (all but the smallest) from their files. */
  readsFiles(length: number): boolean {
    return length >= this.inThreadBelow;
  }

  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk {
    if (this.failure) throw this.failure;
    if (spec.length < this.inThreadBelow) return this.options.local.beginChunk(spec, inputs);
    return new RecordingChunk(spec, inputs, this);
  }

  run(
    spec: ChunkSpec,
    inputs: readonly ChunkInputBytes[],
    nodes: readonly GraphNode[],
    roots: readonly number[],
    result: ChunkResultKind,
  ): Promise<ChunkResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.disposed) return Promise.reject(new Error('internal: the CPU worker pool was used after it was closed'));
    const worker = this.workers[this.route(spec)];
    // Only a statistics pass stores: another pass always follows it (the output pass at least),
    // while the output pass is a job's last, so what it would store is never used.
    const plan = this.planCache(worker.ledger, spec, inputs, nodes, roots, result.kind === 'partials');
    const transfer = new Set<ArrayBuffer>();
    // Inputs the worker does not need are counted here, if they are to be counted at all; a file
    // range is not read here: the worker reads and counts it.
    const countedHere = inputs.map((input, i) =>
      input.countNonFinite && !input.file && !plan.inputsNeeded.has(i) ? countNonFinite(input.bytes, input.dtype) : null,
    );
    const files = new Map<number, SharedFile>();
    const wire: (WireInput | null)[] = inputs.map((input, i) => {
      if (input.file) {
        if (!plan.inputsNeeded.has(i) && !input.countNonFinite) return null;
        const { file, offset, length } = input.file;
        let number = this.fileNumbers.get(file);
        if (number === undefined) this.fileNumbers.set(file, (number = this.nextFileNumber++));
        if (!worker.files.has(number)) files.set(number, file);
        return { bytes: input.bytes, file: { file: number, offset, length }, dtype: input.dtype, cols: input.cols, countNonFinite: input.countNonFinite };
      }
      if (!plan.inputsNeeded.has(i)) return null;
      // Bytes the engine keeps for a later pass must stay usable: those are copied.
      const whole = input.retained ? null : wholeBuffer(input.bytes);
      const bytes = whole ? input.bytes : input.bytes.slice();
      transfer.add(bytes.buffer as ArrayBuffer);
      return { bytes, dtype: input.dtype, cols: input.cols, countNonFinite: input.countNonFinite };
    });
    const id = this.nextId++;
    const request: ChunkRequest = {
      type: 'chunk',
      id,
      spec,
      inputs: wire,
      files: [...files],
      nodes,
      roots,
      result,
      hits: plan.hits,
      stores: plan.stores,
      bitStores: plan.bitStores,
      forgetHits: plan.forgetHits,
    };
    const answered = new Promise<ChunkResult>((resolve, reject) => {
      worker.pending.set(id, { resolve, reject, elements: spec.length });
      try {
        worker.port.post(request, [...transfer]);
        for (const number of files.keys()) worker.files.add(number);
      } catch (error) {
        worker.pending.delete(id);
        reject(new Error(`internal: could not send a chunk of ${spec.tensorName} to a CPU worker: ${(error as Error).message}`));
      }
    });
    if (!countedHere.some((c) => c)) return answered;
    return answered.then((r) => ({ ...r, nonFinite: { ...r.nonFinite, inputs: r.nonFinite.inputs.map((c, i) => countedHere[i] ?? c) } }));
  }

  /** Sends written output bytes back to the worker that encoded them (or to the in-thread backend). */
  recycle(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    const worker = buffer instanceof ArrayBuffer ? this.encodedBy.get(buffer) : undefined;
    if (!worker) {
      this.options.local.recycle?.(bytes);
      return;
    }
    this.encodedBy.delete(buffer as ArrayBuffer);
    if (this.disposed || this.failure) return;
    worker.port.post({ type: 'recycle', buffer: buffer as ArrayBuffer }, [buffer as ArrayBuffer]);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const closed = new Error('the CPU worker pool was closed while a chunk was being computed');
    for (const worker of this.workers) {
      for (const p of worker.pending.values()) p.reject(closed);
      worker.pending.clear();
    }
    await Promise.all(this.workers.map((w) => w.port.terminate()));
    await this.options.local.dispose();
  }

  /** Forgets what job `jobId` kept: its tensor is done. */
  endJob(jobId: number): void {
    this.jobOffsets.delete(jobId);
    const prefix = `${jobId}|`;
    for (const worker of this.workers) {
      const keys = [...worker.ledger.keys.keys()].filter((key) => key.startsWith(prefix));
      if (keys.length === 0) continue;
      forgetKeys(worker.ledger, keys);
      if (!this.disposed && !this.failure) worker.port.post({ type: 'forget', keys }, []);
    }
  }

  /**
   * Chunk k of a job goes to worker (offset + k) mod n in every pass. A job starts on the worker
   * with the fewest elements queued, the next one round the workers among equals, so that tensors
   * of a single chunk and of unequal sizes keep every worker busy: by turns alone, a small
   * tensor's worker would wait for a large one's to finish before the next tensor began.
   */
  private route(spec: ChunkSpec): number {
    const n = this.workers.length;
    if (spec.jobId === undefined) return (hashName(spec.tensorName) + spec.chunkIndex) % n;
    let offset = this.jobOffsets.get(spec.jobId);
    if (offset === undefined) {
      const queued = this.workers.map((w) => [...w.pending.values()].reduce((sum, p) => sum + p.elements, 0));
      const first = this.jobsSeen++ % n;
      offset = first;
      for (let k = 1; k < n; k++) if (queued[(first + k) % n] < queued[offset]) offset = (first + k) % n;
      this.jobOffsets.set(spec.jobId, offset);
    }
    return (offset + spec.chunkIndex) % n;
  }

  /**
   * Decides, for one request, which nodes the worker takes from its cache and which it stores,
   * and so which inputs it needs. Cached are DARE's and DELLA's keep masks (maskKeys: a bit per
   * element, far cheaper to keep than to draw or rank again) first, then the inputs the pass
   * reads, as the worker holds them (a bf16 input raw, 2 bytes an element; others decoded, 4),
   * first come first kept, within the worker's share. A later pass computes everything else from
   * them again: task vectors and other elementwise ops of inputs are subtracted inside the sweeps
   * that read them, in less time than reading the inputs again would take.
   */
  private planCache(ledger: Ledger, spec: ChunkSpec, inputs: readonly ChunkInputBytes[], nodes: readonly GraphNode[], roots: readonly number[], store: boolean) {
    const job = this.cachePerWorker > 0 && spec.jobId !== undefined ? spec.jobId : null;
    const masks = job === null ? nodes.map(() => null) : maskKeys(nodes);
    const keys = nodes.map((node, id) => (job === null ? null : (masks[id] ?? (node.op === 'input' ? `input${node.args[0] as number}` : null))));
    const full = (key: string): string => `${job}|${spec.chunkIndex}|${key}`;
    const hitIds = new Set<number>();
    keys.forEach((key, id) => key !== null && ledger.keys.has(full(key)) && hitIds.add(id));
    const needed = neededNodes(nodes, roots, hitIds);
    const hits: [number, string][] = [];
    const inputsNeeded = new Set<number>();
    for (let id = 0; id < nodes.length; id++) {
      if (!needed[id]) continue;
      if (hitIds.has(id)) hits.push([id, full(keys[id]!)]);
      else if (nodes[id].op === 'input') inputsNeeded.add(nodes[id].args[0] as number);
    }
    const stores: [number, string][] = [];
    const bitStores: number[] = [];
    if (!store) {
      // The output pass is the job's last: what it takes from the cache is not needed again, and
      // its room goes to the next tensor's first pass.
      forgetKeys(ledger, hits.map(([, key]) => key));
      return { hits, stores, bitStores, inputsNeeded, forgetHits: hits.length > 0 };
    }
    const storable = (id: number): boolean => keys[id] !== null && needed[id] === 1 && !hitIds.has(id);
    const maskSize = packedMaskBytes(spec.length);
    const maskIds = [...nodes.keys()].filter((id) => masks[id] !== null && storable(id));
    const inputIds = [...nodes.keys()].filter((id) => nodes[id].op === 'input' && storable(id));
    // Inputs leave room for the masks of this worker's later chunks of the job: a mask saves far more.
    const laterMasks = maskIds.length * maskSize * Math.floor((spec.chunkCount - 1 - spec.chunkIndex) / this.workers.length);
    const candidates = [
      ...maskIds.map((id) => [id, maskSize, 0] as const),
      ...inputIds.map((id) => [id, spec.length * heldBytesPerElement(inputs[nodes[id].args[0] as number], spec), laterMasks] as const),
    ];
    for (const [id, size, reserve] of candidates) {
      const key = full(keys[id]!);
      if (ledger.bytes + size + reserve > this.cachePerWorker || ledger.keys.has(key)) continue;
      ledger.keys.set(key, size);
      ledger.bytes += size;
      stores.push([id, key]);
      if (masks[id] !== null) bitStores.push(id);
    }
    return { hits, stores, bitStores, inputsNeeded, forgetHits: false };
  }

  private answer(worker: PoolWorker, message: ChunkResponse): void {
    const pending = worker.pending.get(message.id);
    if (!pending) return;
    worker.pending.delete(message.id);
    if (message.type === 'error') {
      // The worker dropped its cache: so does the ledger (the merge fails anyway).
      forgetKeys(worker.ledger, [...worker.ledger.keys.keys()]);
      pending.reject(new Error(message.message));
    } else {
      const partials = message.partials?.map((p) => (isNaNBits(p) ? p.nan[0] : p));
      if (message.bytes) this.encodedBy.set(message.bytes.buffer as ArrayBuffer, worker);
      pending.resolve({ partials, bytes: message.bytes, nonFinite: message.nonFinite, readShare: message.readShare });
    }
  }

  private fail(error: Error): void {
    if (this.disposed || this.failure) return;
    this.failure = error;
    for (const worker of this.workers) {
      for (const p of worker.pending.values()) p.reject(error);
      worker.pending.clear();
    }
  }
}

function hashName(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) >>> 0;
  return h;
}
