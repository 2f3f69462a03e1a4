import type { MergeProgress } from '../engine';
import type { MergePlan } from '../plan';
import type { DownloadProgress, RunProgress } from './api';

/** The backend a merge runs on, as the page shows it. */
export interface RunBackend {
  readonly name: NonNullable<RunProgress['backend']>;
  readonly reason?: string;
  readonly notice?: string;
  /** CPU threads, once the CPU backend is chosen. */
  readonly threads?: number;
}

/**
 * The progress of one merge as the page sees it: each step of the run records what it knows
 * (downloads, plan, backend, the engine's own progress) and `emit` sends a snapshot, at most one
 * per interval for the same phase unless forced.
 */
export class RunProgressReporter {
  /** Per (model, file): the download or stream the page shows. */
  readonly downloads = new Map<string, DownloadProgress>();
  plan: MergePlan | null = null;
  engine: MergeProgress | null = null;
  /** Null until the engine has chosen one: the page shows no backend while it downloads. */
  backend: RunBackend | null = null;
  private lastEmit = 0;
  private lastPhase: RunProgress['phase'] | null = null;

  constructor(
    private readonly onProgress: (progress: RunProgress) => void,
    private readonly intervalMs: number,
    readonly started = Date.now(),
  ) {}

  download(model: string, file: string): DownloadProgress | undefined {
    return this.downloads.get(downloadKey(model, file));
  }

  setDownload(entry: DownloadProgress): void {
    this.downloads.set(downloadKey(entry.model, entry.file), entry);
  }

  emit(phase: RunProgress['phase'], force = false): void {
    const now = Date.now();
    if (!force && phase === this.lastPhase && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.lastPhase = phase;
    const { engine, plan, backend } = this;
    const progress: RunProgress = {
      phase,
      downloads: [...this.downloads.values()],
      tensorsDone: engine?.tensorsDone ?? 0,
      tensorsTotal: plan?.jobs.length ?? 0,
      currentTensor: engine?.currentTensor ?? null,
      inputBytesDone: engine?.inputBytesDone ?? 0,
      inputBytesTotal: plan?.totalInputBytes ?? 0,
      bytesPerSecond: engine?.bytesPerSecond ?? this.downloadRate(),
      etaMs: engine?.etaMs ?? null,
      ...(backend ? { backend: backend.name } : {}),
      ...(backend?.reason ? { backendReason: backend.reason } : {}),
      ...(backend?.notice ? { backendNotice: backend.notice } : {}),
      ...(backend?.threads !== undefined ? { threads: backend.threads } : {}),
      ...(engine ? { stageTimes: engine.stageTimes } : {}),
    };
    try {
      // Through comlink this returns a promise; a page that went away must not fail the merge.
      void Promise.resolve(this.onProgress(progress)).catch(() => undefined);
    } catch {
      // ignore
    }
  }

  /** Bytes per second fetched so far (cached files do not count), until the engine measures its own. */
  private downloadRate(): number {
    const elapsed = (Date.now() - this.started) / 1000;
    if (elapsed <= 0) return 0;
    let bytes = 0;
    for (const d of this.downloads.values()) if (d.state !== 'cached') bytes += d.bytesDone;
    return bytes / elapsed;
  }
}

const downloadKey = (model: string, file: string): string => `${model}\u0000${file}`;
