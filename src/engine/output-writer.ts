import type { MergePlan, OutputShard, TensorJob } from '../plan/types';
import { SafetensorsStreamWriter } from '../storage';
import type { ByteSink, OutputFolder } from '../storage/types';

/**
 * Writes the output tensors, in plan order, into the shard files of the plan's layout. Every
 * shard's header is known from the plan, so each file is written front to back in one go.
 */
export class ShardedOutputWriter {
  private readonly jobs: Map<string, TensorJob>;
  private shardIndex = -1;
  private tensorInShard = 0;
  private current: SafetensorsStreamWriter | null = null;

  constructor(
    private readonly plan: MergePlan,
    private readonly folder: OutputFolder,
  ) {
    this.jobs = new Map(plan.jobs.map((j) => [j.name, j]));
  }

  /** Call before the bytes of each tensor; opens the next shard when the previous one is full. */
  async beginTensor(name: string): Promise<void> {
    const shard = this.plan.shards[this.shardIndex];
    if (!shard || this.tensorInShard >= shard.tensors.length) await this.nextShard();
    const expected = this.plan.shards[this.shardIndex].tensors[this.tensorInShard];
    if (expected !== name) throw new Error(`internal: tensor ${name} written where the plan has ${expected}`);
    this.tensorInShard++;
  }

  /**
   * Continues an output whose first `tensorsDone` tensors are already in the folder (a merge
   * resumed after a reload): the shards before the one holding the last of them are complete,
   * and that one is complete too or is reopened after its last complete tensor.
   */
  async resume(tensorsDone: number): Promise<void> {
    if (this.shardIndex !== -1) throw new Error('internal: resume() after the first tensor');
    if (tensorsDone === 0) return;
    let before = 0;
    for (let s = 0; s < this.plan.shards.length; s++) {
      const count = this.plan.shards[s].tensors.length;
      if (tensorsDone <= before + count) {
        const inShard = tensorsDone - before;
        this.shardIndex = s;
        this.tensorInShard = inShard;
        // A full shard was closed at its checkpoint: nothing to reopen.
        if (inShard === count) return;
        if (!this.folder.reopen) throw new Error('internal: this output cannot be resumed inside a file');
        const offset = this.shardWriter(s, null).offsetOfTensor(inShard);
        this.current = this.shardWriter(s, await this.folder.reopen(this.plan.shards[s].file, offset));
        this.current.resumeAfter(inShard);
        return;
      }
      before += count;
    }
    throw new Error(`internal: cannot resume after ${tensorsDone} tensors of a plan of ${before}`);
  }

  /**
   * Hands every byte of the tensors written so far to the output folder; `written` resolves once
   * the folder holds them all: a point to resume from. A full shard is closed now rather than when
   * the next one opens (outputs written through a swap file keep a file only once it is closed).
   */
  async checkpoint(): Promise<{ readonly written: Promise<void> }> {
    if (!this.current) return { written: Promise.resolve() };
    if (this.tensorInShard === this.plan.shards[this.shardIndex].tensors.length) {
      const full = this.current;
      this.current = null;
      await full.finish();
      return { written: Promise.resolve() };
    }
    return this.current.handOffAtTensorBoundary();
  }

  /** Whether the tensors written so far fill whole shards (every file they are in is closed). */
  get atFileBoundary(): boolean {
    return this.current === null;
  }

  /** `released`: see SafetensorsStreamWriter.write. */
  async write(bytes: Uint8Array, released?: () => void): Promise<void> {
    if (!this.current) throw new Error('internal: tensor bytes written before beginTensor');
    await this.current.write(bytes, undefined, released);
  }

  async finish(): Promise<void> {
    if (this.current) await this.current.finish();
    this.current = null;
    const last = this.plan.shards.length - 1;
    if (this.shardIndex !== last || (last >= 0 && this.tensorInShard !== this.plan.shards[last].tensors.length)) {
      throw new Error('internal: the merge ended before every planned tensor was written');
    }
  }

  /** After a failure: lets the shard's write in progress end before the output folder is removed. */
  async abandon(): Promise<void> {
    await this.current?.abandon();
  }

  private async nextShard(): Promise<void> {
    if (this.current) await this.current.finish();
    this.shardIndex++;
    this.tensorInShard = 0;
    const shard: OutputShard | undefined = this.plan.shards[this.shardIndex];
    if (!shard) throw new Error('internal: more tensors than the planned shards hold');
    this.current = this.shardWriter(this.shardIndex, await this.folder.create(shard.file));
    await this.current.begin();
  }

  /** The writer of shard `index`; without a sink only to compute offsets. */
  private shardWriter(index: number, sink: ByteSink | null): SafetensorsStreamWriter {
    const entries = this.plan.shards[index].tensors.map((name) => {
      const job = this.jobs.get(name)!;
      return { name, dtype: job.dtype, shape: [...job.shape], byteLength: job.byteLength };
    });
    return new SafetensorsStreamWriter(sink ?? NO_SINK, entries);
  }
}

const NO_SINK: ByteSink = {
  write: () => Promise.reject(new Error('internal: no sink')),
  close: () => Promise.resolve(),
};
