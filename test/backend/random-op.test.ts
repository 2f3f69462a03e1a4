import { describe, expect, it } from 'vitest';
import { randomUniform, streamKey } from '../../src/backend';
import { onCpuChunk } from '../helpers/cpu-chunk';

describe('random (CPU backend)', () => {
  it('is randomUniform(streamKey(seed, tensor, stream), element index), also across 2^32', async () => {
    for (const start of [0, 12345, 2 ** 32 - 700]) {
      const n = 2000;
      const got = await onCpuChunk([new Float32Array(n)], 1, n, (c) => c.random(3), { seed: 99, tensorName: 'a.b', start });
      const key = streamKey(99, 'a.b', 3);
      expect(Array.from(got)).toEqual(Array.from({ length: n }, (_, i) => randomUniform(key, start + i)));
    }
  });
});
