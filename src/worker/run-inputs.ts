import type { SourceOpener } from '../engine';
import type { ShardSpec, StreamingRangeSource } from '../storage/browser';
import type { ByteSource } from '../storage/types';
import type { VerifiedFile } from './api';
import { modelErrorMessage, type ResolvedModel } from './model-sources';

/** The key of one (model, file) the engine opens. */
export const sourceKeyOf = (model: string, file: string): string => `${model}\u0000${file}`;

/** A Hub file a merge streams; its hash is known only once the merge has read it all. */
export interface StreamedFile {
  readonly model: string;
  readonly spec: ShardSpec;
  readonly source: StreamingRangeSource;
}

/**
 * What one merge reads: a source per (model, file) fetched ahead of the engine (cached, streamed
 * or in memory), and which Hub files were checked against their hash and which could not be.
 */
export class RunInputs {
  readonly sources = new Map<string, () => Promise<ByteSource>>();
  readonly verified: VerifiedFile[] = [];
  readonly unverified: (VerifiedFile & { reason: string })[] = [];
  readonly streams: StreamedFile[] = [];

  /** Adds the files not listed yet (the small files, read and verified while planning). */
  addVerified(files: readonly VerifiedFile[]): void {
    this.verified.push(...files.filter((v) => !this.verified.some((w) => w.model === v.model && w.file === v.file)));
  }

  /** Ends every stream and sorts its file into verified or unverified by its sha256. */
  async finishStreams(): Promise<void> {
    for (const { model, spec, source } of this.streams) {
      const result = await source.finish();
      const entry = { model, file: spec.path, hash: 'sha256' as const };
      if (result.verified) this.verified.push(entry);
      else this.unverified.push({ ...entry, reason: result.reason });
    }
  }

  /** The engine's opener: the sources fetched here first, else the model's own folder (local files, demos). */
  opener(models: ReadonlyMap<string, ResolvedModel>): SourceOpener {
    return {
      open: async (model, file) => {
        const fetched = this.sources.get(sourceKeyOf(model, file));
        if (fetched) return fetched();
        const resolved = models.get(model);
        const source = resolved && (await resolved.folder.open(file));
        if (!source) throw new Error(`Model ${model}: file ${file} is missing`);
        return source;
      },
    };
  }
}

/**
 * The plan was built from headers read by range before the file could be verified: they must
 * equal the same bytes of the verified (or hash-checked streamed) file, in every model that reads
 * this snapshot, or the plan is not trusted.
 */
export async function recheckPlanningReads(models: ReadonlyMap<string, ResolvedModel>, spec: ShardSpec, verified: ByteSource): Promise<void> {
  for (const other of models.values()) {
    if (other.hub && other.hub.snapshot.repo === spec.repo && other.hub.snapshot.commit === spec.commit) {
      await other.hub.recheckRanges(spec.path, verified).catch((error: unknown) => {
        throw new Error(modelErrorMessage(other.key, error), { cause: error });
      });
    }
  }
}
