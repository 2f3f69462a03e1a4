import type { MergeProgress, StageTimes } from '../engine';
import { formatBytes } from '../storage';

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * Where the merge loop's waiting went so far, as "read 40% compute 55% write 5%" (empty before
 * anything was measured): the largest share is what bounds the merge.
 */
export function renderStageSplit({ readMs, computeMs, writeMs }: StageTimes): string {
  const total = readMs + computeMs + writeMs;
  if (!(total > 0)) return '';
  const pct = (ms: number): string => `${Math.round((ms / total) * 100)}%`;
  return `read ${pct(readMs)} compute ${pct(computeMs)} write ${pct(writeMs)}`;
}

/** One-line progress for a TTY, redrawn in place; the stage split is shown when the width allows. */
export function renderProgressLine(p: MergeProgress, width: number): string {
  const fraction = p.inputBytesTotal > 0 ? Math.min(1, p.inputBytesDone / p.inputBytesTotal) : 1;
  let stats =
    ` ${(fraction * 100).toFixed(0).padStart(3)}% ${p.tensorsDone}/${p.tensorsTotal} tensors ` +
    `${formatBytes(p.bytesPerSecond)}/s` +
    (p.etaMs !== null && p.phase === 'merging' ? ` ETA ${formatDuration(p.etaMs)}` : '');
  const split = renderStageSplit(p.stageTimes);
  if (split && stats.length + split.length + 3 + 13 <= width) stats += ` (${split})`;
  const barWidth = Math.max(10, Math.min(40, width - stats.length - 3));
  const filled = Math.round(fraction * barWidth);
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${stats}`;
}
