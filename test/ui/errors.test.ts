import { describe, expect, it } from 'vitest';
import { describeError, isQuotaError } from '../../src/ui/lib/errors';

describe('describeError', () => {
  it('explains storage quota errors (including ones that crossed the worker as plain objects)', () => {
    const e = describeError({ name: 'QuotaExceededError', message: 'The operation failed because it would cause the quota to be exceeded.' });
    expect(e.kind).toBe('quota');
    expect(e.help?.join(' ')).toMatch(/Delete cached models/);
    expect(isQuotaError(new Error('QuotaExceededError: no space left'))).toBe(true);
  });
  it('recognises cancellation, auth and network failures', () => {
    expect(describeError(Object.assign(new Error('aborted'), { name: 'AbortError' })).kind).toBe('cancelled');
    expect(describeError(new Error('HTTP 401 Unauthorized for org/private')).kind).toBe('auth');
    expect(describeError(new TypeError('Failed to fetch')).kind).toBe('network');
    expect(describeError('weird').title).toBe('Something went wrong');
  });
  it('titles a result refused for NaN/Inf by the error name, whatever tensor names the message quotes', () => {
    const message = 'The merge stopped at NaN or Inf values: cancelled.401.weight: output 3 NaN. Nothing was kept.';
    expect(describeError({ name: 'NonFiniteError', message })).toEqual({ kind: 'other', title: 'Refused: the result would hold NaN or Inf values', message });
  });
  it('shows an unavailable WebGPU as the engine says it, without repeating its advice', () => {
    const message = 'WebGPU was asked for, but this browser has no WebGPU (navigator.gpu is missing). Choose Auto or the CPU backend in Settings (slower, same result), or use a browser with WebGPU.';
    expect(describeError({ name: 'WebGpuUnavailableError', message })).toEqual({ kind: 'webgpu', title: 'WebGPU is not available', message });
    // Other GPU failures keep their advice.
    expect(describeError(new Error('GPU device was lost')).help).toEqual([
      'Try again, or choose the CPU backend in Settings (slower, but it does not depend on the GPU driver).',
    ]);
  });
});
