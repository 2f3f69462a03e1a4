import { openSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DTYPE_SIZE, readSafetensorsHeader } from '../fixtures/safetensors';

/**
 * Overwrites elements of one tensor in a model folder's `model.safetensors` with raw bit patterns
 * (a NaN with a payload, ±Inf…), in place, as a corrupted or overflowed checkpoint would hold them.
 */
export function setTensorElements(modelDir: string, tensor: string, elements: readonly (readonly [index: number, bits: number])[]): void {
  const file = join(modelDir, 'model.safetensors');
  const header = readSafetensorsHeader(file);
  const entry = header.entries.find((e) => e.name === tensor);
  if (!entry) throw new Error(`${file} has no tensor ${tensor}`);
  const size = DTYPE_SIZE[entry.dtype];
  const fd = openSync(file, 'r+');
  try {
    for (const [index, bits] of elements) {
      if (index < 0 || (index + 1) * size > entry.end - entry.begin) throw new Error(`${tensor} has no element ${index}`);
      const bytes = new Uint8Array(size);
      const view = new DataView(bytes.buffer);
      if (size === 2) view.setUint16(0, bits, true);
      else if (size === 4) view.setUint32(0, bits, true);
      else throw new Error(`setTensorElements: ${entry.dtype} is not a 16- or 32-bit float`);
      writeSync(fd, bytes, 0, size, 8 + header.headerLength + entry.begin + index * size);
    }
  } finally {
    closeSync(fd);
  }
}
