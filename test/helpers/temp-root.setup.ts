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
  // Each vitest project runs the global setup: the first one's folder serves them all (nested
  // folders made Chromium's socket path too long for it to start).
  if (process.env[ROOT_VARIABLE]) return () => undefined;
  const root = mkdtempSync(join(tmpdir(), 'alloy-vitest-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  process.env[ROOT_VARIABLE] = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    delete process.env[ROOT_VARIABLE];
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  };
}

const ROOT_VARIABLE = 'ALLOY_TEST_TMPDIR';
