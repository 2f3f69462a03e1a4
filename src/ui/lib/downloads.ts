/**
 * Saving outputs. Each output file is a disk-backed File from OPFS: an object URL on it downloads
 * the bytes straight from disk (a multi-GB shard is never copied into memory). "Save all to a
 * folder" writes every file into a folder the user picks (File System Access, Chromium): one
 * permission prompt, where one download per file makes Chrome ask to allow multiple downloads.
 * Browsers without it get one download per file.
 */
import { whileHeld, writableFile } from '../../storage';

export function downloadFile(file: Blob, name: string): void {
  const url = URL.createObjectURL(file);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started reading by the time the click returns; keep the URL a while anyway.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

interface DirectoryPickerWindow {
  showDirectoryPicker?: (options?: { mode?: 'readwrite'; id?: string }) => Promise<FileSystemDirectoryHandle>;
}

export function canSaveToFolder(): boolean {
  return typeof window !== 'undefined' && typeof (window as DirectoryPickerWindow).showDirectoryPicker === 'function';
}

/**
 * Writes files into a new subfolder `folderName` of a folder the user picks. `onFile` reports
 * progress (file index). Throws AbortError when the user closes the picker. Returns the picked
 * folder's name (the browser does not reveal its path).
 */
export async function saveAllToFolder(
  folderName: string,
  files: readonly { name: string }[],
  open: (name: string) => Promise<File>,
  onFile: (index: number, name: string) => void,
): Promise<string> {
  const picker = (window as DirectoryPickerWindow).showDirectoryPicker!;
  const parent = await picker({ mode: 'readwrite', id: 'alloy-output' });
  const folder = await parent.getDirectoryHandle(folderName, { create: true });
  for (const [index, { name }] of files.entries()) {
    onFile(index, name);
    const file = await open(name);
    const handle = await folder.getFileHandle(name, { create: true });
    const writable = await writableFile(handle);
    const stream = file.stream();
    await whileHeld([stream, writable], () => stream.pipeTo(writable));
  }
  return parent.name;
}

/** One download per file, spaced out so that the browser does not drop any (it may ask once to allow several). */
export async function downloadAll(files: readonly { name: string }[], open: (name: string) => Promise<File>): Promise<void> {
  for (const { name } of files) {
    downloadFile(await open(name), name);
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}
