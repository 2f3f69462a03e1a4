import { decodeToF32, dtypeSize, isFloatDtype, loadModelTensors } from '../storage';
import type { ByteSource, ModelFolder, ModelTensors, TensorInfo } from '../storage';
import { ForwardModelError } from './errors';

/**
 * A model's weights as the forward pass reads them: tensor by tensor, or a matrix in blocks of
 * rows, straight from the safetensors files through the storage layer's ByteSources, decoded to
 * f32 on the way. Nothing is cached, so what is resident is what the caller holds.
 */
export class ModelWeights {
  readonly model: string;
  private readonly folder: ModelFolder;
  private readonly tensors: ModelTensors;
  private readonly sources = new Map<string, Promise<ByteSource>>();

  private constructor(folder: ModelFolder, tensors: ModelTensors) {
    this.model = folder.id;
    this.folder = folder;
    this.tensors = tensors;
  }

  /** Reads the shard headers (not the weights). */
  static async open(folder: ModelFolder): Promise<ModelWeights> {
    return new ModelWeights(folder, await loadModelTensors(folder));
  }

  has(name: string): boolean {
    return this.tensors.tensors.has(name);
  }

  /** The tensor's header entry, checked to be a float tensor of `shape`. */
  info(name: string, shape: readonly number[]): TensorInfo {
    const info = this.tensors.tensors.get(name);
    if (!info) {
      throw new ForwardModelError(this.model, `tensor ${name} is missing from the safetensors files: the model is incomplete or not of the family its config.json says`);
    }
    if (!isFloatDtype(info.dtype)) {
      throw new ForwardModelError(this.model, `tensor ${name} has dtype ${info.dtype}; the forward pass reads F32, F16 and BF16 weights only`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new ForwardModelError(
        this.model,
        `tensor ${name} has shape [${info.shape.join(', ')}] but config.json implies [${shape.join(', ')}]: the config does not match the weights`,
      );
    }
    return info;
  }

  /** The whole tensor as f32. */
  async read(name: string, shape: readonly number[]): Promise<Float32Array> {
    const info = this.info(name, shape);
    return this.readRows(info, 0, shape[0] ?? 1);
  }

  /**
   * Rows [start, end) of a 1-D or 2-D tensor (a 1-D tensor has rows of one value) as f32, decoded
   * into `out` when given (a reused block buffer keeps the heap flat while a model streams by).
   */
  async readRows(info: TensorInfo, start: number, end: number, out?: Float32Array): Promise<Float32Array> {
    const rowElements = info.shape.slice(1).reduce((a, b) => a * b, 1);
    const size = dtypeSize(info.dtype);
    const bytes = await (await this.source(info.file)).read(info.offset + start * rowElements * size, (end - start) * rowElements * size);
    return decodeToF32(bytes, info.dtype as 'F32' | 'F16' | 'BF16', out);
  }

  private source(file: string): Promise<ByteSource> {
    let source = this.sources.get(file);
    if (!source) {
      source = this.folder.open(file).then((opened) => {
        if (!opened) throw new ForwardModelError(this.model, `the safetensors file ${file} is missing`);
        return opened;
      });
      this.sources.set(file, source);
    }
    return source;
  }

  async close(): Promise<void> {
    const open = [...this.sources.values()];
    this.sources.clear();
    await Promise.allSettled(open.map(async (s) => (await s).close?.()));
  }
}
