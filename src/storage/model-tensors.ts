import { SafetensorsError } from './errors';
import { readSafetensorsHeader } from './safetensors-reader';
import type { ByteSource, ModelFolder, ModelTensors, TensorInfo } from './types';
import { untrustedText } from './untrusted-text';

/**
 * Finds a model's safetensors weights and reads every shard header, in mergekit's order of
 * preference (`ShardedTensorIndex.from_disk`): the index, then `model.safetensors`. As a
 * convenience for hand-made folders, a single other `*.safetensors` file is accepted too.
 */

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export async function loadModelTensors(folder: ModelFolder): Promise<ModelTensors> {
  const indexText = await folder.readText(INDEX_FILE);
  if (indexText !== null) return loadSharded(folder, indexText);

  const single = await folder.open(SINGLE_FILE);
  if (single !== null) return toModelTensors(SINGLE_FILE, await readHeaderAndClose(folder, single, SINGLE_FILE));

  // Only top-level files: safetensors in subfolders (onnx/, diffusers parts…) are other things.
  const files = (await folder.listFiles()).filter((file) => !file.includes('/'));
  const candidates = files.filter((file) => file.endsWith('.safetensors')).sort();
  if (candidates.length === 1) {
    return toModelTensors(candidates[0], await readShardHeader(folder, candidates[0]));
  }
  if (candidates.length > 1) {
    throw new SafetensorsError(
      { model: folder.id, file: INDEX_FILE },
      `the model has ${candidates.length} safetensors files (${untrustedText(candidates.join(', '))}) but no ${INDEX_FILE} ` +
        `that says which tensor is in which: add the index file, or keep a single ${SINGLE_FILE}`,
    );
  }
  const hasPytorch = files.some((file) => /^pytorch_model.*\.bin(\.index\.json)?$/.test(file));
  throw new SafetensorsError(
    { model: folder.id, file: SINGLE_FILE },
    hasPytorch
      ? 'the model has no safetensors weights, only pytorch_model*.bin files, which Alloy does not read yet: ' +
          'convert them to safetensors first (e.g. with transformers: load the model and save_pretrained(safe_serialization=True))'
      : 'the model has no safetensors weights (no model.safetensors, no model.safetensors.index.json, ' +
          'no *.safetensors file): check that the model id or folder is right',
  );
}

async function readShardHeader(folder: ModelFolder, file: string, listedBy?: string): Promise<TensorInfo[]> {
  const source = await folder.open(file);
  if (source === null) {
    throw new SafetensorsError(
      { model: folder.id, file },
      listedBy
        ? `${listedBy} lists this shard but the file is missing: download the complete model`
        : 'the file is missing',
    );
  }
  return readHeaderAndClose(folder, source, file);
}

async function readHeaderAndClose(folder: ModelFolder, source: ByteSource, file: string): Promise<TensorInfo[]> {
  try {
    const header = await readSafetensorsHeader(source, file, { model: folder.id });
    return header.tensors;
  } finally {
    await source.close?.();
  }
}

function toModelTensors(file: string, tensors: TensorInfo[]): ModelTensors {
  return { files: [file], tensors: new Map(tensors.map((tensor) => [tensor.name, tensor])) };
}

/** Parses `weight_map` from the index: tensor name → shard file name. */
function parseWeightMap(folder: ModelFolder, text: string): Map<string, string> {
  const where = { model: folder.id, file: INDEX_FILE };
  const hint = 'the index is corrupt: re-download it';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? ` (${untrustedText(error.message)})` : '';
    throw new SafetensorsError(where, `the index is not valid JSON${detail}: re-download it`);
  }
  const weightMap =
    typeof json === 'object' && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>).weight_map
      : undefined;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new SafetensorsError(where, `the index has no "weight_map" object: ${hint}`);
  }
  const result = new Map<string, string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file === '') {
      throw new SafetensorsError(
        { ...where, tensor },
        `"weight_map" maps the tensor to ${untrustedText(file)} instead of a shard file name: ${hint}`,
      );
    }
    result.set(tensor, file);
  }
  return result;
}

async function loadSharded(folder: ModelFolder, indexText: string): Promise<ModelTensors> {
  const weightMap = parseWeightMap(folder, indexText);
  // mergekit sorts the shards by file name; so do we, for a stable order.
  const files = [...new Set(weightMap.values())].sort();
  const headers = await Promise.all(files.map((file) => readShardHeader(folder, file, INDEX_FILE)));
  const shardTensors = new Map<string, Map<string, TensorInfo>>();
  files.forEach((file, i) => {
    shardTensors.set(file, new Map(headers[i].map((tensor) => [tensor.name, tensor])));
  });

  const tensors = new Map<string, TensorInfo>();
  for (const file of files) {
    for (const tensor of shardTensors.get(file)!.values()) {
      const listed = weightMap.get(tensor.name);
      if (listed === file) {
        tensors.set(tensor.name, tensor);
        continue;
      }
      const where = { model: folder.id, file, tensor: tensor.name };
      if (listed === undefined) {
        throw new SafetensorsError(
          where,
          `the tensor is in this shard but not listed in ${INDEX_FILE}: the index does not match the shards; re-download the model`,
        );
      }
      throw new SafetensorsError(
        where,
        shardTensors.get(listed)?.has(tensor.name)
          ? `the tensor is in two shards, this one and "${untrustedText(listed)}" (the one the index names): the model is corrupt; re-download it`
          : `the tensor is in this shard but ${INDEX_FILE} says it is in "${untrustedText(listed)}": the index does not match the shards; re-download the model`,
      );
    }
  }
  for (const [name, file] of weightMap) {
    if (!shardTensors.get(file)!.has(name)) {
      throw new SafetensorsError(
        { model: folder.id, file, tensor: name },
        `${INDEX_FILE} lists the tensor in this shard but the shard does not contain it: the index does not match the shards; re-download the model`,
      );
    }
  }
  return { files, tensors };
}
