import { BlobByteSource } from './blob-source';
import type { ByteSource, ModelFolder } from './types';

/**
 * A model folder made of File objects the user picked (`<input type=file webkitdirectory>`) or
 * dropped: either the folder itself, whose files carry `webkitRelativePath` (`my-model/config.json`),
 * or some of its files, which carry only their names. The common top folder is dropped from the
 * paths so that the model's files are at the root; hidden entries (`.git/…`) are left out.
 */
export class LocalFilesModelFolder implements ModelFolder {
  readonly id: string;
  private readonly files: ReadonlyMap<string, File>;

  constructor(id: string, files: readonly File[]) {
    this.id = id;
    this.files = localFilePaths(files);
  }

  async listFiles(): Promise<string[]> {
    return [...this.files.keys()].sort();
  }

  async open(file: string): Promise<ByteSource | null> {
    const found = this.files.get(file);
    return found ? new BlobByteSource(`${this.id}/${file}`, found) : null;
  }

  async readText(file: string): Promise<string | null> {
    const found = this.files.get(file);
    return found ? found.text() : null;
  }
}

/** Path inside the model folder → File. */
export function localFilePaths(files: readonly File[]): Map<string, File> {
  const withPaths = files.map((file) => {
    const relative = (file as File & { webkitRelativePath?: string }).webkitRelativePath;
    const path = (relative && relative.length > 0 ? relative : file.name).replace(/\\/g, '/').replace(/^\/+/, '');
    return { file, parts: path.split('/').filter((p) => p !== '' && p !== '.') };
  });
  // Strip the folders every file shares (the picked folder, and a single wrapper folder in it).
  let strip = 0;
  for (;;) {
    const first = withPaths[0]?.parts[strip];
    if (first === undefined) break;
    if (!withPaths.every((f) => f.parts.length > strip + 1 && f.parts[strip] === first)) break;
    strip++;
  }
  const result = new Map<string, File>();
  for (const { file, parts } of withPaths) {
    const rest = parts.slice(strip);
    if (rest.length === 0 || rest.some((p) => p.startsWith('.') || p === '..')) continue;
    const path = rest.join('/');
    if (result.has(path)) {
      throw new Error(`two files are named ${path}: pick one model folder at a time`);
    }
    result.set(path, file);
  }
  return result;
}
