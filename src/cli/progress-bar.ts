import type { MergeProgress } from '../engine';
import { formatBytes } from '../storage';

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** One-line progress for a TTY, redrawn in place. */
export function renderProgressLine(p: MergeProgress, width: number): string {
  const fraction = p.inputBytesTotal > 0 ? Math.min(1, p.inputBytesDone / p.inputBytesTotal) : 1;
  const stats =
    ` ${(fraction * 100).toFixed(0).padStart(3)}% ${p.tensorsDone}/${p.tensorsTotal} tensors ` +
    `${formatBytes(p.bytesPerSecond)}/s` +
    (p.etaMs !== null && p.phase === 'merging' ? ` ETA ${formatDuration(p.etaMs)}` : '');
  const barWidth = Math.max(10, Math.min(40, width - stats.length - 3));
  const filled = Math.round(fraction * barWidth);
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${stats}`;
}
