import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatNumber, formatParameterCount, formatRate, formatStageSplit, percent } from '../../src/ui/lib/format';

describe('format', () => {
  it('says in words where the merge time went, largest share first', () => {
    expect(formatStageSplit({ readMs: 620, computeMs: 300, writeMs: 80 })).toBe('Waiting mostly on: reading (disk/network) 62%, computing 30%, writing 8%');
    expect(formatStageSplit({ readMs: 10, computeMs: 85, writeMs: 5 })).toBe('Waiting mostly on: computing 85%, reading (disk/network) 10%, writing 5%');
    expect(formatStageSplit({ readMs: 0, computeMs: 0, writeMs: 0 })).toBe('');
    expect(formatStageSplit(undefined)).toBe('');
  });
  it('formats byte sizes in decimal units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.50 kB');
    expect(formatBytes(14_483_464_192)).toBe('14.5 GB');
    expect(formatBytes(145_000_000_000)).toBe('145 GB');
    expect(formatBytes(-1)).toBe('–');
  });
  it('formats parameter counts like model names', () => {
    expect(formatParameterCount(7_241_732_096)).toBe('7.24B');
    expect(formatParameterCount(494_032_768)).toBe('494M');
    expect(formatParameterCount(12_345)).toBe('12.3K');
    expect(formatParameterCount(999)).toBe('999');
  });
  it('formats durations and rates', () => {
    expect(formatDuration(4_200)).toBe('4 s');
    expect(formatDuration(185_000)).toBe('3 min 05 s');
    expect(formatDuration(3_720_000)).toBe('1 h 02 min');
    expect(formatDuration(null)).toBe('–');
    expect(formatRate(48_200_000)).toBe('48.2 MB/s');
    expect(formatRate(0)).toBe('–');
  });
  it('clamps percentages and treats an empty total as done', () => {
    expect(percent(5, 10)).toBe(50);
    expect(percent(11, 10)).toBe(100);
    expect(percent(0, 0)).toBe(100);
  });
  it('prints form numbers without float noise', () => {
    expect(formatNumber(0.1 + 0.2)).toBe('0.3');
    expect(formatNumber(1e-8)).toBe('1e-8');
    expect(formatNumber(0.5)).toBe('0.5');
  });
});
