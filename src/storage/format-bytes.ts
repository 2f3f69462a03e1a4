const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/**
 * A byte count for people, the one spelling everywhere (page, CLI, worker messages): decimal units
 * (kB = 1000 bytes, GB = 10⁹), as the Hugging Face Hub shows sizes, and three significant digits:
 * 999 B, 1.50 kB, 14.5 GB, 145 GB. Anything that is not a finite count ≥ 0 is '–'.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 999.5 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ${UNITS[unit]}`;
}
