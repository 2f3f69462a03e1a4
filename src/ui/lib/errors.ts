/**
 * Errors from the worker, turned into something a user can act on. Errors cross the worker
 * boundary through comlink as {name, message}; the name says what kind of failure it was.
 */

export interface UserError {
  readonly title: string;
  readonly message: string;
  /** What to do about it, when there is something to say. */
  readonly help?: readonly string[];
  readonly kind: 'quota' | 'cancelled' | 'network' | 'auth' | 'webgpu' | 'other';
}

function parts(error: unknown): { name: string; message: string } {
  if (error instanceof Error) return { name: error.name, message: error.message };
  if (typeof error === 'object' && error !== null) {
    const e = error as { name?: unknown; message?: unknown };
    return { name: typeof e.name === 'string' ? e.name : 'Error', message: typeof e.message === 'string' ? e.message : String(error) };
  }
  return { name: 'Error', message: String(error) };
}

export function isQuotaError(error: unknown): boolean {
  const { name, message } = parts(error);
  return name === 'QuotaExceededError' || /quota|not enough (disk|storage) space|no space left/i.test(message);
}

export function isCancelled(error: unknown): boolean {
  const { name, message } = parts(error);
  return name === 'AbortError' || name === 'CancelledError' || /\bcancel+ed\b/i.test(message);
}

export function describeError(error: unknown): UserError {
  const { name, message } = parts(error);
  // First: the message quotes tensor names, which may hold any word the checks below look for.
  if (name === 'NonFiniteError') {
    return { kind: 'other', title: 'Refused: the result would hold NaN or Inf values', message };
  }
  if (isCancelled(error)) {
    return { kind: 'cancelled', title: 'Cancelled', message: 'The run was cancelled. Downloaded files stay in the cache, so a new run resumes where this one stopped.' };
  }
  if (isQuotaError(error)) {
    return {
      kind: 'quota',
      title: 'The browser ran out of storage for this site',
      message,
      help: [
        'Alloy keeps downloaded models and the merged output in the browser\'s private storage (OPFS). The browser refused to store more.',
        'Delete cached models you no longer need (Cache, in the header) and old outputs (Result), then run again: finished downloads are kept.',
        'Chrome lets one site use up to about 60% of free disk space; free some disk space if the disk itself is nearly full.',
        'In an incognito window, storage is kept in memory and is much smaller: use a normal window for large merges.',
      ],
    };
  }
  if (name === 'HubAuthError' || /\b(401|403)\b|unauthori[sz]ed|forbidden|invalid (access )?token|gated/i.test(message)) {
    return {
      kind: 'auth',
      title: 'The Hub refused access',
      message,
      help: [
        'Gated or private models need a Hugging Face access token with read access, and you must have accepted the model\'s terms on its Hub page.',
        'Pushing needs a token with write access.',
      ],
    };
  }
  if (name === 'NetworkError' || /failed to fetch|network ?error|load failed|ERR_/i.test(message)) {
    return {
      kind: 'network',
      title: 'Network problem',
      message,
      help: ['Check the connection and run again: completed downloads are cached and partial ones resume.'],
    };
  }
  // Its message already says what to do: repeating the advice below would say it twice.
  if (name === 'WebGpuUnavailableError') return { kind: 'webgpu', title: 'WebGPU is not available', message };
  if (/webgpu|gpu device|device (was )?lost/i.test(message)) {
    return {
      kind: 'webgpu',
      title: 'GPU problem',
      message,
      help: ['Try again, or choose the CPU backend in Settings (slower, but it does not depend on the GPU driver).'],
    };
  }
  return { kind: 'other', title: name && name !== 'Error' ? name : 'Something went wrong', message };
}
