/**
 * Runs test/lora/reference_lora.py, the independent numpy reference of the LoRA tests. It needs
 * only numpy (Debian python3-numpy). Outside CI a machine without it skips those tests with a
 * message; in CI a missing numpy fails them, never a silent skip.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const CANDIDATES = [process.env.ALLOY_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => Boolean(p));

export const NUMPY_PYTHON: string | null =
  CANDIDATES.find((python) => spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0) ?? null;

/** Whether the numpy comparisons run: always in CI, elsewhere when numpy is there. */
export const RUN_NUMPY_TESTS = NUMPY_PYTHON !== null || Boolean(process.env.CI);

if (!RUN_NUMPY_TESTS) console.warn('python3 with numpy not found: skipping the LoRA numpy reference tests (install python3-numpy)');

const SCRIPT = join(import.meta.dirname, 'reference_lora.py');

/** Runs the reference; throws with its stderr when it fails. */
export function runReference(args: string[]): void {
  if (!NUMPY_PYTHON) {
    throw new Error(`CI=${process.env.CI ?? ''}: no python3 with numpy (tried ${CANDIDATES.join(', ')}); install python3-numpy or set ALLOY_PYTHON`);
  }
  const r = spawnSync(NUMPY_PYTHON, [SCRIPT, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`reference_lora.py ${args[0]} failed: ${r.stderr}`);
}
