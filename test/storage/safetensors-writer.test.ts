import { describe, expect, it } from 'vitest';
import {
  MemoryByteSource,
  MemorySink,
  SafetensorsStreamWriter,
  decodeToF32,
  encodeFromF32,
  encodeSafetensorsHeader,
  readSafetensorsHeader,
  type SafetensorsEntry,
} from '../../src/storage';

const ENTRIES: SafetensorsEntry[] = [
  { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [3, 5], byteLength: 30 },
  { name: 'model.norm.weight', dtype: 'F32', shape: [5], byteLength: 20 },
  { name: 'empty', dtype: 'F16', shape: [0, 7], byteLength: 0 },
  { name: 'lm_head.weight', dtype: 'F16', shape: [3, 5], byteLength: 30 },
];

function headerJson(bytes: Uint8Array): { length: number; text: string } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, text: new TextDecoder().decode(bytes.subarray(8, 8 + length)) };
}

describe('encodeSafetensorsHeader', () => {
  it('writes __metadata__ first, contiguous offsets in the given order, padded to 8 bytes', () => {
    const bytes = encodeSafetensorsHeader(ENTRIES);
    const { length, text } = headerJson(bytes);
    expect(bytes.byteLength).toBe(8 + length);
    expect(bytes.byteLength % 8).toBe(0);
    expect(text).toMatch(/^\{"__metadata__":\{"format":"pt"\},"model\.embed_tokens\.weight":/);
    expect(text.trimEnd().length).toBeGreaterThan(length - 8);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const json = JSON.parse(text) as Record<string, { data_offsets: number[] }>;
    expect(Object.keys(json)).toEqual(['__metadata__', ...ENTRIES.map((entry) => entry.name)]);
    expect(ENTRIES.map((entry) => json[entry.name].data_offsets)).toEqual([[0, 30], [30, 50], [50, 50], [50, 80]]);
  });

  it('takes other metadata, and omits an empty one', () => {
    expect(headerJson(encodeSafetensorsHeader(ENTRIES.slice(0, 1), { format: 'pt', merged_by: 'alloy' })).text).toMatch(
      /^\{"__metadata__":\{"format":"pt","merged_by":"alloy"\},/,
    );
    expect(headerJson(encodeSafetensorsHeader(ENTRIES.slice(0, 1), {})).text).toMatch(/^\{"model\.embed_tokens/);
  });

  it('refuses duplicate names, reserved names and sizes that do not match the shape', () => {
    expect(() => encodeSafetensorsHeader([ENTRIES[0], ENTRIES[0]])).toThrow(/"model.embed_tokens.weight" is listed twice/);
    expect(() => encodeSafetensorsHeader([{ ...ENTRIES[0], name: '__metadata__' }])).toThrow(/reserved/);
    expect(() => encodeSafetensorsHeader([{ ...ENTRIES[0], byteLength: 29 }])).toThrow(
      /byteLength 29 does not match shape \[3,5\] of BF16 \(30 bytes\)/,
    );
    expect(() => encodeSafetensorsHeader([{ ...ENTRIES[0], shape: [-3, -5] }])).toThrow(/not a list of non-negative integers/);
  });
});

/** Values per entry, and their encoded bytes. */
function fixture(): { values: Float32Array[]; bytes: Uint8Array[] } {
  const values = ENTRIES.map((entry, i) => {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    return Float32Array.from({ length: count }, (_, j) => (j - 7) * 0.37 + i);
  });
  const bytes = ENTRIES.map((entry, i) => encodeFromF32(values[i], entry.dtype as 'F32' | 'F16' | 'BF16'));
  return { values, bytes };
}

describe('SafetensorsStreamWriter', () => {
  it('writes a file the reader accepts, with the same data, from many tiny writes', async () => {
    const { bytes } = fixture();
    const sink = new MemorySink();
    const writer = new SafetensorsStreamWriter(sink, ENTRIES, undefined, 16);
    await writer.begin();
    for (let i = 0; i < ENTRIES.length; i++) {
      // 3-byte pieces: unaligned, and never a whole element of anything.
      for (let at = 0; at < bytes[i].byteLength; at += 3) await writer.write(bytes[i].subarray(at, at + 3), ENTRIES[i].name);
    }
    expect(writer.currentTensor).toBeNull();
    await writer.finish();
    expect(sink.closed).toBe(true);
    // The header (over a block) goes straight through; then every sink write is a full
    // 16-byte block except the last.
    expect(sink.chunks[0].byteLength).toBe(encodeSafetensorsHeader(ENTRIES).byteLength);
    expect(sink.chunks.slice(1, -1).map((chunk) => chunk.byteLength)).toEqual(new Array(sink.chunks.length - 2).fill(16));

    const file = sink.bytes();
    expect(file.byteLength).toBe(writer.fileSize);
    const header = await readSafetensorsHeader(new MemoryByteSource('out', file), 'model.safetensors');
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.tensors.map((tensor) => [tensor.name, tensor.dtype, tensor.shape, tensor.byteLength])).toEqual(
      ENTRIES.map((entry) => [entry.name, entry.dtype, entry.shape, entry.byteLength]),
    );
    header.tensors.forEach((tensor, i) => {
      expect([...file.subarray(tensor.offset, tensor.offset + tensor.byteLength)]).toEqual([...bytes[i]]);
    });
    const norm = header.tensors[1];
    expect(decodeToF32(file.subarray(norm.offset, norm.offset + norm.byteLength), 'F32')).toEqual(fixture().values[1]);
  });

  it('gathers small writes into blocks (one sink write for a small file)', async () => {
    const { bytes } = fixture();
    const sink = new MemorySink();
    const writer = new SafetensorsStreamWriter(sink, ENTRIES);
    await writer.begin();
    for (const tensor of bytes) for (const byte of tensor) await writer.write(new Uint8Array([byte]));
    await writer.finish();
    expect(sink.chunks.length).toBe(1);
    expect(sink.chunks[0].byteLength).toBe(writer.fileSize);
  });

  it('hands a sink that gathers writes itself every write as it comes, in order', async () => {
    const { bytes } = fixture();
    const sink = Object.assign(new MemorySink(), { gathersWrites: true });
    const writer = new SafetensorsStreamWriter(sink, ENTRIES);
    await writer.begin();
    for (const tensor of bytes) for (const byte of tensor) await writer.write(new Uint8Array([byte]));
    await writer.finish();
    const dataBytes = bytes.reduce((n, tensor) => n + tensor.byteLength, 0);
    expect(sink.chunks.map((chunk) => chunk.byteLength)).toEqual([writer.fileSize - dataBytes, ...Array(dataBytes).fill(1)]);
    expect(sink.bytes().subarray(writer.fileSize - dataBytes)).toEqual(Uint8Array.from(bytes.flatMap((tensor) => [...tensor])));
  });

  it('passes large writes through without copying them into the block', async () => {
    const entries: SafetensorsEntry[] = [{ name: 'big', dtype: 'U8', shape: [100], byteLength: 100 }];
    const sink = new MemorySink();
    const writer = new SafetensorsStreamWriter(sink, entries, undefined, 32);
    await writer.begin();
    await writer.write(new Uint8Array(5));
    await writer.write(new Uint8Array(95).fill(7));
    await writer.finish();
    expect(sink.bytes().byteLength).toBe(writer.fileSize);
    expect(sink.bytes().subarray(-95).every((byte) => byte === 7)).toBe(true);
  });

  it('writes behind: returns before the sink has written, one sink write at a time, bytes in order', async () => {
    const entries: SafetensorsEntry[] = [{ name: 'big', dtype: 'U8', shape: [100], byteLength: 100 }];
    const sink = new GatedSink();
    const writer = new SafetensorsStreamWriter(sink, entries, undefined, 16);
    await writer.begin();
    const data = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
    // Small writes fill one block while the sink still writes the other.
    for (let i = 0; i < 40; i += 5) await writer.write(data.subarray(i, i + 5));
    expect(sink.started).toBeGreaterThan(0);
    expect(sink.done).toBeLessThan(sink.started);
    await writer.write(data.subarray(40)); // large: handed to the sink as it is
    const finished = writer.finish();
    await finished;
    expect(sink.maxConcurrent).toBe(1);
    expect(sink.closedAfterAllWrites).toBe(true);
    expect(sink.bytes().subarray(-100)).toEqual(data);
  });

  it('releases copied bytes at once and passed-through bytes only once the sink has written them', async () => {
    const entries: SafetensorsEntry[] = [{ name: 'big', dtype: 'U8', shape: [100], byteLength: 100 }];
    const sink = new GatedSink();
    const writer = new SafetensorsStreamWriter(sink, entries, undefined, 16);
    await writer.begin();
    const released: string[] = [];
    await writer.write(new Uint8Array(4).fill(1), undefined, () => released.push('small'));
    expect(released).toEqual(['small']); // copied into the block
    const large = new Uint8Array(96).fill(2);
    await writer.write(large, 'big', () => released.push(`large after ${sink.done} of ${sink.started} sink writes`));
    // The sink still writes the large bytes (as they are): they are not released yet.
    expect(released).toEqual(['small']);
    await writer.finish();
    expect(released).toEqual(['small', `large after ${sink.started} of ${sink.started} sink writes`]);
    expect(sink.bytes().subarray(-96).every((byte) => byte === 2)).toBe(true);
  });

  it('never releases bytes whose sink write failed', async () => {
    const entries: SafetensorsEntry[] = [{ name: 'big', dtype: 'U8', shape: [64], byteLength: 64 }];
    const sink = new GatedSink(2);
    const writer = new SafetensorsStreamWriter(sink, entries, undefined, 8);
    await writer.begin();
    let released = 0;
    await writer.write(new Uint8Array(16), undefined, () => released++); // passed through: the failing sink write
    await expect(writer.write(new Uint8Array(16))).rejects.toThrow(/disk full/);
    await expect(writer.finish()).rejects.toThrow(/incomplete/);
    expect(released).toBe(0);
  });

  it('throws a failed sink write at the next call, and writes nothing more', async () => {
    const entries: SafetensorsEntry[] = [{ name: 'big', dtype: 'U8', shape: [64], byteLength: 64 }];
    const sink = new GatedSink(2);
    const writer = new SafetensorsStreamWriter(sink, entries, undefined, 8);
    await writer.begin();
    await writer.write(new Uint8Array(16)); // the header's block, then these 16 bytes: the second sink write fails
    await expect(writer.write(new Uint8Array(16))).rejects.toThrow(/disk full/);
    await expect(writer.write(new Uint8Array(1))).rejects.toThrow(/after a failed write/);
    await expect(writer.finish()).rejects.toThrow(/incomplete: tensor "big" received 32 of its 64 bytes/);
    expect(sink.started).toBe(2);
    expect(sink.closed).toBe(true);
  });

  it('abandon() waits for the sink write in progress', async () => {
    const entries: SafetensorsEntry[] = [{ name: 'big', dtype: 'U8', shape: [64], byteLength: 64 }];
    const sink = new GatedSink();
    const writer = new SafetensorsStreamWriter(sink, entries, undefined, 8);
    await writer.begin();
    await writer.write(new Uint8Array(32));
    expect(sink.done).toBeLessThan(sink.started);
    await writer.abandon();
    expect(sink.done).toBe(sink.started);
    await expect(writer.write(new Uint8Array(1))).rejects.toThrow(/after a failed write/);
  });

  it('refuses a write that spills into the next tensor or past the end', async () => {
    const writer = new SafetensorsStreamWriter(new MemorySink(), ENTRIES);
    await writer.begin();
    await writer.write(new Uint8Array(20));
    await expect(writer.write(new Uint8Array(11))).rejects.toThrow(
      /tensor "model.embed_tokens.weight" is 30 bytes but received 31/,
    );
    await expect(writer.write(new Uint8Array(1))).rejects.toThrow(/after a failed write/);

    const small = new SafetensorsStreamWriter(new MemorySink(), [ENTRIES[1]]);
    await small.begin();
    await small.write(new Uint8Array(20));
    await expect(small.write(new Uint8Array(1))).rejects.toThrow(/written after the last tensor/);
  });

  it('refuses bytes announced for the wrong tensor', async () => {
    const writer = new SafetensorsStreamWriter(new MemorySink(), ENTRIES);
    await writer.begin();
    await writer.write(new Uint8Array(30), 'model.embed_tokens.weight');
    await expect(writer.write(new Uint8Array(2), 'lm_head.weight')).rejects.toThrow(
      /bytes for tensor "lm_head.weight" but the file expects tensor "model.norm.weight" next/,
    );
  });

  it('refuses to finish a short file, and still closes the sink', async () => {
    const sink = new MemorySink();
    const writer = new SafetensorsStreamWriter(sink, ENTRIES);
    await writer.begin();
    await writer.write(new Uint8Array(30));
    await writer.write(new Uint8Array(4));
    await expect(writer.finish()).rejects.toThrow(
      /incomplete: tensor "model.norm.weight" received 4 of its 20 bytes, and 2 tensors after it none/,
    );
    expect(sink.closed).toBe(true);
  });

  it('enforces begin → write → finish', async () => {
    const writer = new SafetensorsStreamWriter(new MemorySink(), ENTRIES);
    await expect(writer.write(new Uint8Array(1))).rejects.toThrow(/before begin/);
    await expect(writer.finish()).rejects.toThrow(/before begin/);
    await writer.begin();
    await expect(writer.begin()).rejects.toThrow(/twice/);
  });

  it('writes a file with no tensors', async () => {
    const sink = new MemorySink();
    const writer = new SafetensorsStreamWriter(sink, []);
    await writer.begin();
    await writer.finish();
    const header = await readSafetensorsHeader(new MemoryByteSource('out', sink.bytes()), 'model.safetensors');
    expect(header.tensors).toEqual([]);
  });
});

/**
 * A sink whose writes finish only after a few macrotasks (as a disk write would), that fails its
 * `failAt`-th write, and that records how many writes ran at once.
 */
class GatedSink extends MemorySink {
  started = 0;
  done = 0;
  maxConcurrent = 0;
  closedAfterAllWrites = false;
  private running = 0;

  constructor(private readonly failAt = 0) {
    super();
  }

  override async write(bytes: Uint8Array): Promise<void> {
    this.started++;
    this.running++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.running);
    const copy = bytes.slice(); // what the writer handed over, before any later reuse could show
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
    this.running--;
    this.done++;
    if (this.started === this.failAt) throw new Error('disk full');
    await super.write(copy);
  }

  override async close(): Promise<void> {
    this.closedAfterAllWrites = this.running === 0 && this.done === this.started;
    await super.close();
  }
}
