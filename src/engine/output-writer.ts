import type { MergePlan, OutputShard, TensorJob } from '../plan/types';
import { SafetensorsStreamWriter } from '../storage';
import type { OutputFolder } from '../storage/types';

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

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.current) throw new Error('internal: tensor bytes written before beginTensor');
    await this.current.write(bytes);
  }

  async finish(): Promise<void> {
    if (this.current) await this.current.finish();
    this.current = null;
    const last = this.plan.shards.length - 1;
    if (this.shardIndex !== last || (last >= 0 && this.tensorInShard !== this.plan.shards[last].tensors.length)) {
      throw new Error('internal: the merge ended before every planned tensor was written');
    }
  }

  private async nextShard(): Promise<void> {
    if (this.current) await this.current.finish();
    this.shardIndex++;
    this.tensorInShard = 0;
    const shard: OutputShard | undefined = this.plan.shards[this.shardIndex];
    if (!shard) throw new Error('internal: more tensors than the planned shards hold');
    const entries = shard.tensors.map((name) => {
      const job = this.jobs.get(name)!;
      return { name, dtype: job.dtype, shape: [...job.shape], byteLength: job.byteLength };
    });
    this.current = new SafetensorsStreamWriter(await this.folder.create(shard.file), entries);
    await this.current.begin();
  }
}
