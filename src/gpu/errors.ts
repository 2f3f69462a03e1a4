/** No usable WebGPU adapter or device (no `navigator.gpu`, no driver, or the request failed). */
export class GpuUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuUnavailableError';
  }
}

/**
 * The GPU device was lost (driver reset, GPU removed, watchdog, out of memory): the merge cannot
 * go on on this device. Callers may start over on the CPU backend.
 */
export class GpuDeviceLostError extends Error {
  constructor(
    readonly reason: string,
    detail: string,
  ) {
    super(
      `the WebGPU device was lost (${reason}${detail ? `: ${detail}` : ''}). ` +
        'Try again, use a smaller --memory budget, or merge on the CPU with --backend cpu.',
    );
    this.name = 'GpuDeviceLostError';
  }
}

/** WebGPU reported a validation or out-of-memory error for a tensor's commands. */
export class GpuOperationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuOperationError';
  }
}
