/**
 * Interop with the reference implementation: Python `safetensors` (Rust core) + numpy.
 * Skipped when they are not installed, except in CI, where they must run (test/helpers/python.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MemoryByteSource,
  MemorySink,
  SafetensorsStreamWriter,
  buildShardIndex,
  decodeToF32,
  encodeFromF32,
  encodeSafetensorsHeader,
  layoutShards,
  readSafetensorsHeader,
  type FloatDtype,
  type SafetensorsEntry,
} from '../../src/storage';
import { RUN_PYTHON_TESTS, requirePython } from '../helpers/python';
import { MALFORMED } from './helpers';


function runPython(script: string, ...args: string[]): unknown {
  const result = spawnSync(requirePython(), ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`python failed:\n${result.stderr}`);
  return JSON.parse(result.stdout);
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'alloy-interop-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Values with the awkward cases: NaN, ±Inf, ±0, subnormals, ties, f16 overflow. */
function specialValues(count: number, seed: number): Float32Array {
  const specials = [NaN, -NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-45, 2 ** -24, 2 ** -25, 65504, 65520, 1e6, 1 + 2 ** -8, 1 + 2 ** -11];
  return Float32Array.from({ length: count }, (_, i) => (i < specials.length ? specials[i] : Math.sin(i * 12.9898 + seed) * 10 ** ((i % 9) - 4)));
}

// CI installs Python's safetensors (.ci/run): there the test must run, never skip.
describe.skipIf(!RUN_PYTHON_TESTS)('interop with Python safetensors', () => {
  it('Python reads our files, bit for bit', async () => {
    const tensors: { name: string; dtype: FloatDtype | 'I64'; shape: number[] }[] = [
      { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'BF16', shape: [7, 13] },
      { name: 'model.norm.weight', dtype: 'F16', shape: [3, 1, 5] },
      { name: 'lm_head.weight', dtype: 'F32', shape: [11, 3] },
      { name: 'scalar', dtype: 'F32', shape: [] },
      { name: 'empty', dtype: 'BF16', shape: [0, 4] },
      { name: 'odd.bf16', dtype: 'BF16', shape: [1] },
      { name: 'position_ids', dtype: 'I64', shape: [1, 3] },
    ];
    const data = tensors.map((tensor, i) => {
      const count = tensor.shape.reduce((a, b) => a * b, 1);
      if (tensor.dtype === 'I64') return new Uint8Array(new BigInt64Array([0n, -5n, 1n << 40n]).buffer);
      return encodeFromF32(specialValues(count, i), tensor.dtype);
    });
    const entries: SafetensorsEntry[] = tensors.map((tensor, i) => ({ ...tensor, byteLength: data[i].byteLength }));
    const sink = new MemorySink();
    const writer = new SafetensorsStreamWriter(sink, entries);
    await writer.begin();
    for (const bytes of data) {
      // Odd-sized pieces, so the data crosses block and element boundaries.
      for (let at = 0; at < bytes.byteLength; at += 5) await writer.write(bytes.subarray(at, at + 5));
    }
    await writer.finish();
    const file = path.join(dir, 'ours.safetensors');
    await writeFile(file, sink.bytes());

    const seen = runPython(
      `
import json, sys, numpy as np, safetensors
from safetensors import safe_open
path = sys.argv[1]
raw = dict(safetensors.deserialize(open(path, 'rb').read()))
out = {}
with safe_open(path, framework='np') as f:
    meta = f.metadata()
    for name in f.keys():
        info = raw[name]
        entry = {'dtype': info['dtype'], 'shape': list(info['shape']), 'raw': bytes(info['data']).hex()}
        sl = f.get_slice(name)
        entry['slice'] = [sl.get_dtype(), list(sl.get_shape())]
        if info['dtype'] != 'BF16':   # numpy has no bfloat16
            arr = f.get_tensor(name)
            entry['np'] = [str(arr.dtype), list(arr.shape), np.ascontiguousarray(arr).tobytes().hex()]
        out[name] = entry
print(json.dumps({'metadata': meta, 'tensors': out}))
`,
      file,
    ) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; raw: string; slice: [string, number[]]; np?: [string, number[], string] }>;
    };

    expect(seen.metadata).toEqual({ format: 'pt' });
    expect(Object.keys(seen.tensors).sort()).toEqual(tensors.map((tensor) => tensor.name).sort());
    const numpyNames: Record<string, string> = { F16: 'float16', F32: 'float32', I64: 'int64' };
    tensors.forEach((tensor, i) => {
      const got = seen.tensors[tensor.name];
      expect([got.dtype, got.shape, got.slice]).toEqual([tensor.dtype, tensor.shape, [tensor.dtype, tensor.shape]]);
      expect(got.raw).toBe(hex(data[i]));
      if (tensor.dtype !== 'BF16') expect(got.np).toEqual([numpyNames[tensor.dtype], tensor.shape, hex(data[i])]);
    });
  });

  it('we read files Python wrote, and write byte-identical headers', async () => {
    const file = path.join(dir, 'theirs.safetensors');
    const written = runPython(
      `
import json, sys, numpy as np, safetensors
from safetensors import TensorSpec
rng = np.random.default_rng(0)
arrays = {
    'h': (rng.standard_normal((3, 5)) * 100).astype(np.float16),
    'f': rng.standard_normal((2, 7)).astype(np.float32),
    'b': (rng.integers(0, 65536, size=(9,), dtype=np.uint16)),   # raw bf16 bit patterns
    'i': np.arange(4, dtype=np.int64),
}
dtypes = {'h': 'float16', 'f': 'float32', 'b': 'bfloat16', 'i': 'int64'}
specs = {k: TensorSpec(dtype=dtypes[k], shape=v.shape, data_ptr=v.ctypes.data, data_len=v.nbytes) for k, v in arrays.items()}
blob = safetensors.serialize(specs, metadata={'format': 'pt'})
open(sys.argv[1], 'wb').write(blob)
print(json.dumps({k: v.tobytes().hex() for k, v in arrays.items()}))
`,
      file,
    ) as Record<string, string>;

    const bytes = new Uint8Array(await readFile(file));
    const header = await readSafetensorsHeader(new MemoryByteSource(file, bytes), 'theirs.safetensors');
    expect(header.metadata).toEqual({ format: 'pt' });
    // The Rust writer orders by alignment, then name: i (8 bytes), f (4), then b, h (2).
    expect(header.tensors.map((tensor) => [tensor.name, tensor.dtype, tensor.shape])).toEqual([
      ['i', 'I64', [4]],
      ['f', 'F32', [2, 7]],
      ['b', 'BF16', [9]],
      ['h', 'F16', [3, 5]],
    ]);
    for (const tensor of header.tensors) {
      const data = bytes.subarray(tensor.offset, tensor.offset + tensor.byteLength);
      expect(hex(data)).toBe(written[tensor.name]);
      if (tensor.dtype === 'F16' || tensor.dtype === 'BF16' || tensor.dtype === 'F32') {
        // Decoding and re-encoding is lossless for every stored value (NaN aside, quieted).
        expect(hex(encodeFromF32(decodeToF32(data, tensor.dtype), tensor.dtype))).toBe(
          tensor.dtype === 'BF16' ? hex(quietBf16(data)) : hex(data),
        );
      }
    }
    // Same entries in the same order: our header is byte for byte Python's.
    const ours = encodeSafetensorsHeader(header.tensors);
    expect(hex(ours)).toBe(hex(bytes.subarray(0, header.dataOffset)));
  });

  it('Python rejects every malformed file we reject', async () => {
    const files: string[] = [];
    for (const [i, bad] of MALFORMED.entries()) {
      const file = path.join(dir, `bad-${i}.safetensors`);
      await writeFile(file, bad.bytes);
      files.push(file);
    }
    const outcomes = runPython(
      `
import json, sys, safetensors
out = []
for path in sys.argv[1:]:
    try:
        safetensors.deserialize(open(path, 'rb').read())
        out.append('accepted')
    except Exception as e:
        out.append('rejected: ' + str(e))
print(json.dumps(out))
`,
      ...files,
    ) as string[];
    MALFORMED.forEach((bad, i) => expect([bad.title, outcomes[i].slice(0, 8)]).toEqual([bad.title, 'rejected']));
  });

  it('our index text is what Python json.dump(indent=2) writes', () => {
    const text = buildShardIndex(
      layoutShards(
        [
          { name: 'model.layers.1.w', byteLength: 10 },
          { name: 'model.layers.0.w', byteLength: 10 },
          { name: 'lm_head.weight\u00e9', byteLength: 10 },
        ],
        15,
      ),
    );
    const reformatted = runPython(
      `
import json, sys
data = json.loads(sys.argv[1])
data['weight_map'] = dict(sorted(data['weight_map'].items()))
print(json.dumps(json.dumps(data, indent=2)))
`,
      text,
    );
    expect(reformatted).toBe(text);
  });
});

/** What a NaN bf16 becomes after decode + encode: the same with the quiet bit set. */
function quietBf16(data: Uint8Array): Uint8Array {
  const halves = new Uint16Array(data.slice().buffer);
  for (let i = 0; i < halves.length; i++) {
    if ((halves[i] & 0x7f80) === 0x7f80 && (halves[i] & 0x7f) !== 0) halves[i] |= 0x40;
  }
  return new Uint8Array(halves.buffer);
}
