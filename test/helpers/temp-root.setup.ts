import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Vitest global setup: every temporary folder of the run (tests' `mkdtemp`s, the pool workers',
 * Chromium's) goes into one folder of its own, removed when the run ends, so that test runs do not
 * leave their models and outputs behind in the system's temporary folder (about 0.5 GB a run).
 * The test processes start after this and inherit TMPDIR, which `os.tmpdir()` reads.
 */
export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'alloy-vitest-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  };
}
