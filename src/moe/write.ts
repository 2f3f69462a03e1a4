import {
  buildShardIndex,
  decodeToF32,
  DEFAULT_SHARD_SIZE,
  dtypeSize,
  encodeFromF32,
  isFloatDtype,
  layoutShards,
  SafetensorsStreamWriter,
  type ByteSource,
  type FloatDtype,
  type OutputFolder,
} from '../storage';
import { MoeCancelledError } from './errors';
import { randomStream } from './random';
import type { MoePlan, OutputTensor, TensorPart } from './types';

/**
 * Streams the planned tensors into safetensors shards (docs/moe.md §3): each copied weight is read
 * in blocks of at most `blockBytes`, so memory stays at one block whatever the models' sizes. A
 * weight whose dtype is kept and that gets no noise or scale is copied byte for byte.
 */
export interface WriteOptions {
  readonly seed: number;
  readonly outShardSize?: number;
  readonly blockBytes: number;
  readonly signal?: AbortSignal;
  readonly onTensor?: (done: number, total: number, tensor: string, bytesWritten: number) => void;
}

export async function writeMoeTensors(plan: MoePlan, routers: readonly Float32Array[], output: OutputFolder, options: WriteOptions): Promise<number> {
  const shards = layoutShards(plan.tensors, options.outShardSize ?? DEFAULT_SHARD_SIZE);
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  const sources = new Map<string, Promise<ByteSource>>();
  const source = (part: Extract<TensorPart, { kind: 'copy' }>): Promise<ByteSource> => {
    const key = `${part.model.key}\u0000${part.info.file}`;
    let s = sources.get(key);
    if (!s) {
      s = part.model.folder.open(part.info.file).then((opened) => {
        if (!opened) throw new Error(`${part.model.key}: the safetensors file ${part.info.file} is missing`);
        return opened;
      });
      sources.set(key, s);
    }
    return s;
  };
  let bytesWritten = 0;
  let done = 0;
  try {
    for (const shard of shards) {
      const entries = shard.tensors.map((name) => {
        const t = byName.get(name)!;
        return { name, dtype: t.dtype, shape: [...t.shape], byteLength: t.byteLength };
      });
      const writer = new SafetensorsStreamWriter(await output.create(shard.file), entries);
      await writer.begin();
      for (const name of shard.tensors) {
        if (options.signal?.aborted) throw new MoeCancelledError();
        const tensor = byName.get(name)!;
        const write = async (bytes: Uint8Array): Promise<void> => {
          await writer.write(bytes, name);
          bytesWritten += bytes.byteLength;
        };
        for (const part of tensor.parts) await writePart(tensor, part, routers, plan, source, write, options);
        done++;
        options.onTensor?.(done, plan.tensors.length, name, bytesWritten);
      }
      await writer.finish();
    }
    if (shards.length > 1) await output.writeText('model.safetensors.index.json', buildShardIndex(shards));
  } finally {
    await Promise.allSettled([...sources.values()].map(async (s) => (await s).close?.()));
  }
  return bytesWritten;
}

async function writePart(
  tensor: OutputTensor,
  part: TensorPart,
  routers: readonly Float32Array[],
  plan: MoePlan,
  source: (part: Extract<TensorPart, { kind: 'copy' }>) => Promise<ByteSource>,
  write: (bytes: Uint8Array) => Promise<void>,
  options: WriteOptions,
): Promise<void> {
  const outSize = dtypeSize(tensor.dtype);
  if (part.kind === 'zeros') {
    await write(new Uint8Array(part.elements * outSize));
    return;
  }
  if (part.kind === 'router') {
    const H = plan.hidden;
    const all = routers[part.layer];
    const rows = part.rows === 'routed' ? all.subarray(0, plan.routedExperts * H) : all.subarray(plan.routedExperts * H, (plan.routedExperts + 1) * H);
    await write(encodeFromF32(rows, tensor.dtype as FloatDtype));
    return;
  }
  const { info } = part;
  const src = await source(part);
  const settings = part.expert?.settings;
  const noise = settings?.noise_scale;
  const scale = part.expert?.residual ? settings?.residual_scale : undefined;
  const raw = info.dtype === tensor.dtype && noise === undefined && scale === undefined;
  if (raw || !isFloatDtype(info.dtype)) {
    for (let offset = 0; offset < info.byteLength; offset += options.blockBytes) {
      await write(await src.read(info.offset + offset, Math.min(options.blockBytes, info.byteLength - offset)));
    }
    return;
  }
  // Converted element by element: decoded to f32, noise added, scaled, encoded to the output dtype.
  const inSize = dtypeSize(info.dtype);
  const elements = info.byteLength / inSize;
  const step = Math.max(1, Math.floor(options.blockBytes / Math.max(4, inSize, outSize)));
  const stream = noise !== undefined ? randomStream(options.seed, `moe-noise:${part.expert!.label}`) : null;
  for (let start = 0; start < elements; start += step) {
    const count = Math.min(step, elements - start);
    const values = decodeToF32(await src.read(info.offset + start * inSize, count * inSize), info.dtype);
    if (stream !== null || scale !== undefined) {
      for (let i = 0; i < count; i++) {
        let v = values[i];
        if (stream !== null) v += stream.normal() * noise!;
        if (scale !== undefined) v *= scale;
        values[i] = v;
      }
    }
    await write(encodeFromF32(values, tensor.dtype as FloatDtype));
  }
}
