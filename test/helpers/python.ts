/**
 * The Python interpreter for the interoperability tests (Python's `safetensors` + numpy, the
 * reference implementation of the format). Outside CI a machine without them skips those tests;
 * in CI (.ci/run installs them) they run, and a missing interpreter fails them with a message that
 * says what to install, never a silent skip.
 */
import { spawnSync } from 'node:child_process';

/** `ALLOY_PYTHON` first (.ci/run sets it), then the `python3` on PATH, then Debian's own. */
const CANDIDATES = [process.env.ALLOY_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => Boolean(p));

/** The first interpreter that imports safetensors and numpy, or null. */
export const PYTHON: string | null =
  CANDIDATES.find((python) => spawnSync(python, ['-c', 'import safetensors, numpy'], { stdio: 'ignore' }).status === 0) ??
  null;

/** Whether the interop tests run: always in CI, elsewhere only when the packages are there. */
export const RUN_PYTHON_TESTS = PYTHON !== null || Boolean(process.env.CI);

if (!PYTHON && !process.env.CI) {
  console.warn('python3 with safetensors and numpy not found: skipping the Python interoperability tests');
}

/** The interpreter, or an error saying what CI must install (call it inside a test). */
export function requirePython(): string {
  if (PYTHON) return PYTHON;
  throw new Error(
    `CI=${process.env.CI ?? ''}: no Python with safetensors and numpy (tried ${CANDIDATES.join(', ')}). ` +
      '.ci/run installs them (Debian python3-numpy, pip safetensors) and sets ALLOY_PYTHON; run it, or install them by hand.',
  );
}

/**
 * The interpreter for the numpy-only references (the forward pass, perplexity): Debian's
 * python3-numpy is enough, safetensors is not needed. Same rules: skipped outside CI when missing,
 * a failure in CI.
 */
export const NUMPY_PYTHON: string | null =
  CANDIDATES.find((python) => spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0) ?? null;

export const RUN_NUMPY_TESTS = NUMPY_PYTHON !== null || Boolean(process.env.CI);

/** The numpy interpreter, or an error saying what to install (call it inside a test). */
export function requireNumpyPython(): string {
  if (NUMPY_PYTHON) return NUMPY_PYTHON;
  throw new Error(
    `CI=${process.env.CI ?? ''}: no Python with numpy (tried ${CANDIDATES.join(', ')}). Install Debian's python3-numpy (.ci/run does).`,
  );
}
