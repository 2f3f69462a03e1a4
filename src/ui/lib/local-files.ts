/**
 * Local models: the files of a model folder, picked with a folder picker (`webkitdirectory`), as
 * loose files, or dropped (folders are walked through `webkitGetAsEntry`). Files are grouped by the
 * folder they sit in; a folder is a model when it holds config.json or safetensors weights. Only a
 * folder's own files are kept (not its subfolders'), so a File's name is its path in the model.
 */

export interface PickedFile {
  readonly file: File;
  /** Path relative to what was picked or dropped (`my-model/config.json`, or just `config.json`). */
  readonly path: string;
}

export interface LocalModelGroup {
  /** The folder name (used as the model reference in the YAML). */
  readonly name: string;
  readonly files: readonly File[];
  /** What makes this folder unusable (no config.json, no safetensors…). */
  readonly problems: readonly string[];
}

const OTHER_WEIGHTS = /\.(bin|pt|pth|ckpt|gguf|h5|msgpack|onnx)$/i;

function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function groupLocalFiles(picked: readonly PickedFile[], fallbackName = 'local-model'): LocalModelGroup[] {
  const byDir = new Map<string, File[]>();
  for (const { file, path } of picked) {
    const clean = path.replace(/^\/+/, '');
    const dir = dirname(clean);
    if (basename(clean).startsWith('.')) continue;
    if (!byDir.has(dir)) byDir.set(dir, []);
    byDir.get(dir)!.push(file);
  }
  const isModelDir = (files: readonly File[]) => files.some((f) => f.name === 'config.json' || f.name.endsWith('.safetensors'));
  let dirs = [...byDir.entries()].filter(([, files]) => isModelDir(files));
  if (dirs.length === 0) {
    // Nothing recognisable: report on the shallowest folder rather than silently dropping it.
    const shallowest = [...byDir.entries()].sort((a, b) => a[0].split('/').length - b[0].split('/').length)[0];
    dirs = shallowest ? [shallowest] : [];
  }
  const names = new Set<string>();
  return dirs.map(([dir, files]) => {
    let name = (dir === '' ? fallbackName : basename(dir)).replace(/[\s@+]+/g, '-');
    for (let n = 2; names.has(name); n++) name = `${name.replace(/-\d+$/, '')}-${n}`;
    names.add(name);
    return { name, files, problems: folderProblems(files) };
  });
}

export function folderProblems(files: readonly File[]): string[] {
  const problems: string[] = [];
  const names = files.map((f) => f.name);
  if (!names.includes('config.json')) problems.push('no config.json: pick the model folder itself (the one with config.json and the .safetensors files)');
  if (!names.some((n) => n.endsWith('.safetensors'))) {
    const other = names.filter((n) => OTHER_WEIGHTS.test(n));
    problems.push(
      other.length > 0
        ? `no .safetensors weights (found ${other.slice(0, 2).join(', ')}${other.length > 2 ? '…' : ''}): Alloy reads safetensors only; convert the checkpoint first`
        : 'no .safetensors weights in this folder',
    );
  }
  if (names.some((n) => n.endsWith('.safetensors.index.json'))) {
    const index = names.filter((n) => /-of-\d+\.safetensors$/.test(n));
    const expected = /-of-(\d+)\.safetensors$/.exec(index[0] ?? '')?.[1];
    if (expected !== undefined && index.length < Number(expected)) {
      problems.push(`only ${index.length} of ${Number(expected)} weight shards are here`);
    }
  }
  return problems;
}

/** Files from `<input type=file webkitdirectory>` (or a plain multi-file input). */
export function pickedFromInput(files: ArrayLike<File>): PickedFile[] {
  return Array.from(files, (file) => ({ file, path: (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name }));
}

/** The parts of the File and Directory Entries API that walking a drop needs. */
interface EntryLike {
  readonly isFile: boolean;
  readonly isDirectory: boolean;
  readonly name: string;
  readonly fullPath: string;
}
interface FileEntryLike extends EntryLike {
  file(success: (file: File) => void, failure?: (error: unknown) => void): void;
}
interface DirectoryEntryLike extends EntryLike {
  createReader(): { readEntries(success: (entries: EntryLike[]) => void, failure?: (error: unknown) => void): void };
}

/** Walks dropped entries (folders recursively, to a limited depth) into picked files. */
export async function pickedFromEntries(entries: readonly EntryLike[], maxDepth = 3): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  const walk = async (entry: EntryLike, depth: number): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileEntryLike).file(resolve, reject));
      out.push({ file, path: entry.fullPath.replace(/^\//, '') || entry.name });
    } else if (entry.isDirectory && depth < maxDepth) {
      const reader = (entry as DirectoryEntryLike).createReader();
      // readEntries returns at most ~100 entries per call: read until it returns none.
      for (;;) {
        const batch = await new Promise<EntryLike[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, depth + 1);
      }
    }
  };
  for (const entry of entries) await walk(entry, 0);
  return out;
}
