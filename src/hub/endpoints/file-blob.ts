import { downloadFile, fileDownloadInfo, type FileDownloadInfoOutput } from '@huggingface/hub';
import { HubError } from '../errors';
import type { HubFile, HubRepoSnapshot } from '../types';
import { credentials, type Fetch, type HubContext } from './context';

/** How files are downloaded: over plain `/resolve/` ranges, or with the Xet protocol. */
export interface DownloadContext extends HubContext {
  /** Read Xet-backed files from the CAS (see HubClientOptions.xet). */
  readonly xet: boolean;
  /** Xet download infos by `repo@commit/path`, asked once per file. */
  readonly downloadInfos: Map<string, Promise<FileDownloadInfoOutput>>;
}

/** The `/resolve/` URL of a file at the snapshot's commit. */
export function fileUrl(hubUrl: string, snapshot: Pick<HubRepoSnapshot, 'repo' | 'commit'>, path: string): string {
  const encodedPath = path.split('/').map(encodeURIComponent).join('/');
  return `${hubUrl}/${snapshot.repo}/resolve/${encodeURIComponent(snapshot.commit)}/${encodedPath}`;
}

/** A lazy Blob of the file (ranges are fetched on `slice().arrayBuffer()`). */
export async function fileBlob(ctx: DownloadContext, snapshot: HubRepoSnapshot, file: HubFile, fetch: Fetch): Promise<Blob> {
  const info =
    ctx.xet && file.xetHash
      ? await xetDownloadInfo(ctx, snapshot, file, fetch)
      : // Known from the listing: no probe request needed.
        { size: file.size, etag: file.sha256 ?? file.oid ?? '', url: fileUrl(ctx.hubUrl, snapshot, file.path) };
  const blob = await downloadFile({
    repo: snapshot.repo,
    path: file.path,
    revision: snapshot.commit,
    hubUrl: ctx.hubUrl,
    fetch,
    downloadInfo: info,
    xet: ctx.xet,
    ...credentials(ctx),
  });
  if (!blob) throw new HubError(`${snapshot.repo} has no file ${file.path} (404)`, 'file-not-found', 404);
  return blob;
}

function xetDownloadInfo(ctx: DownloadContext, snapshot: HubRepoSnapshot, file: HubFile, fetch: Fetch): Promise<FileDownloadInfoOutput> {
  const key = `${snapshot.repo}@${snapshot.commit}/${file.path}`;
  let pending = ctx.downloadInfos.get(key);
  if (!pending) {
    pending = fileDownloadInfo({ repo: snapshot.repo, path: file.path, revision: snapshot.commit, hubUrl: ctx.hubUrl, fetch, ...credentials(ctx) }).then(
      (found) => {
        if (!found) throw new HubError(`${snapshot.repo} has no file ${file.path} at ${snapshot.commit} (404)`, 'file-not-found', 404);
        return found;
      },
    );
    pending.catch(() => ctx.downloadInfos.delete(key));
    ctx.downloadInfos.set(key, pending);
  }
  return pending;
}
