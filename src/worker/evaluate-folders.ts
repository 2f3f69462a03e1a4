import { LocalFilesModelFolder, MANIFEST_FILE, type OpfsOutputStore, type OpfsShardCache } from '../storage/browser';
import type { ByteSource, ModelFolder } from '../storage/types';
import { hubFileSpec, type ResolvedModel } from './model-sources';

/**
 * The folders the Evaluate panel reads: an input model from where the merge read it (a Hub model's
 * shards from the browser's cache when the merge left them there, else by range from the Hub;
 * local and demo models from their files) and the merged output from where it was written.
 */

/** A Hub model whose complete, verified cached shards are read from the cache instead of the network. */
export function cacheFirstFolder(model: ResolvedModel, cache: OpfsShardCache): ModelFolder {
  const hub = model.hub;
  if (!hub) return model.folder;
  return {
    id: model.folder.id,
    listFiles: () => model.folder.listFiles(),
    readText: (file) => model.folder.readText(file),
    open: async (file): Promise<ByteSource | null> => {
      const info = hub.file(file);
      if (info && (info.sha256 || info.oid)) {
        const spec = hubFileSpec(model.key, hub, info);
        if (await cache.isComplete(spec).catch(() => false)) return cache.openFile(spec);
      }
      return model.folder.open(file);
    },
  };
}

/** A merged output kept in the browser's storage, as a model folder. */
export async function storedOutputFolder(outputs: OpfsOutputStore, name: string): Promise<ModelFolder> {
  const manifest = await outputs.readManifest(name);
  if (!manifest) throw new Error(`there is no output named "${name}" in this browser's storage: it was deleted, or merge again`);
  const files = await Promise.all(manifest.files.map(async (f) => renamed(await outputs.file(name, f.name), f.name)));
  return new LocalFilesModelFolder(name, files);
}

/** A merged output written into a folder the user picked: `<picked>/<name>/`. */
export async function directoryOutputFolder(picked: FileSystemDirectoryHandle, name: string): Promise<ModelFolder> {
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await picked.getDirectoryHandle(name);
  } catch {
    throw new Error(`the folder ${picked.name || 'you chose'}/${name} is gone: it was moved or deleted, so the output cannot be evaluated`);
  }
  const files: File[] = [];
  for await (const [entry, handle] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (handle.kind !== 'file' || entry === MANIFEST_FILE) continue;
    files.push(renamed(await (handle as FileSystemFileHandle).getFile(), entry));
  }
  return new LocalFilesModelFolder(name, files);
}

/** The same bytes under the file's name in the folder (no copy: a File is a view of its blob). */
function renamed(file: File, name: string): File {
  return file.name === name ? file : new File([file], name);
}
