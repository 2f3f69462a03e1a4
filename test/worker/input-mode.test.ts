import { describe, expect, it } from 'vitest';
import { availableBytes, chooseInputMode, estimateDisk, type DiskFacts } from '../../src/worker/input-mode';

const GB = 1e9;
const facts = (over: Partial<DiskFacts> = {}): DiskFacts => ({
  missingDownloadBytes: 40 * GB,
  hasHubInputs: true,
  outputBytes: 14 * GB,
  output: 'browser',
  estimate: { usage: 2 * GB, quota: 102 * GB },
  ...over,
});

describe('chooseInputMode', () => {
  it('auto caches when download and browser output fit 90% of the free space', () => {
    // free 100 GB, usable 90; 40 + 14 = 54 fits.
    expect(chooseInputMode('auto', facts()).mode).toBe('cache');
    // 80 + 14 = 94 > 90: stream.
    expect(chooseInputMode('auto', facts({ missingDownloadBytes: 80 * GB })).mode).toBe('stream');
    // The same download with the output in a folder: 80 <= 90, cache.
    expect(chooseInputMode('auto', facts({ missingDownloadBytes: 80 * GB, output: 'folder' })).mode).toBe('cache');
    // Exactly at the limit: 76 + 14 = 90 fits.
    expect(chooseInputMode('auto', facts({ missingDownloadBytes: 76 * GB })).mode).toBe('cache');
  });

  it('follows the setting when it is not auto, and caches when nothing comes from the Hub or the browser does not say', () => {
    expect(chooseInputMode('stream', facts()).mode).toBe('stream');
    expect(chooseInputMode('cache', facts({ missingDownloadBytes: 500 * GB })).mode).toBe('cache');
    expect(chooseInputMode('stream', facts({ hasHubInputs: false })).mode).toBe('cache');
    expect(chooseInputMode('auto', facts({ estimate: undefined, missingDownloadBytes: 500 * GB }))).toEqual({
      mode: 'cache',
      reason: expect.stringMatching(/does not report/),
    });
  });
});

describe('estimateDisk', () => {
  it('gives the browser and folder bytes of every input mode and output target', () => {
    const e = estimateDisk('auto', facts({ missingDownloadBytes: 80 * GB }));
    expect(e.availableBytes).toBe(100 * GB);
    expect(e.downloadBytes).toBe(80 * GB);
    expect(e.input).toBe('stream');
    expect(e.needs.map((n) => [n.input, n.output, n.browserBytes / GB, n.folderBytes / GB, n.fits])).toEqual([
      ['cache', 'browser', 94, 0, false],
      ['cache', 'folder', 80, 14, true],
      ['stream', 'browser', 14, 0, true],
      ['stream', 'folder', 0, 14, true],
    ]);
  });

  it('free space is quota minus usage, never negative, unknown without a quota', () => {
    expect(availableBytes({ usage: 5, quota: 3 })).toBe(0);
    expect(availableBytes({ usage: 5 })).toBeNull();
    expect(availableBytes({ quota: 7 })).toBe(7);
    expect(estimateDisk('auto', facts({ estimate: {} })).needs.every((n) => n.fits === null)).toBe(true);
  });
});
