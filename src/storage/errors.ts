import { untrustedText } from './untrusted-text';

/** Where a safetensors problem was found; every field is optional except the file. */
export interface SafetensorsErrorLocation {
  readonly file: string;
  readonly tensor?: string;
  /** The model as the user named it, when the file belongs to a model folder. */
  readonly model?: string;
}

/**
 * A safetensors file (or a sharded model's index) that Alloy refuses to read. The message says
 * what is wrong, where, and what to do; the fields let callers point at the culprit.
 */
export class SafetensorsError extends Error {
  readonly file: string;
  readonly tensor?: string;
  readonly model?: string;

  constructor(where: SafetensorsErrorLocation, problem: string) {
    super(`${describeLocation(where)}: ${problem}`);
    this.name = 'SafetensorsError';
    this.file = where.file;
    if (where.tensor !== undefined) this.tensor = where.tensor;
    if (where.model !== undefined) this.model = where.model;
  }
}

function describeLocation(where: SafetensorsErrorLocation): string {
  const parts: string[] = [];
  // Names come from files (an index, a header): cut and escaped.
  if (where.model !== undefined) parts.push(`model "${untrustedText(where.model)}"`);
  parts.push(`file "${untrustedText(where.file)}"`);
  if (where.tensor !== undefined) parts.push(`tensor "${untrustedText(where.tensor)}"`);
  return parts.join(', ');
}

/** A read of `length` bytes at `offset` that met the end of the file at byte `at` (`detail` says more). */
export function fileEndedError(name: string, at: number, length: number, offset: number, detail = ''): Error {
  return new Error(`${name}: the file ended at byte ${at} while reading ${length} bytes at ${offset}${detail}: it was truncated while in use; re-download it`);
}
