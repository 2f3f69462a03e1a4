import { modelPathKind } from '../../config';

/** Hub repo ids as users type or paste them, and the names a pushed model may take. */

export const DEFAULT_HUB_URL = 'https://huggingface.co';

const PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/** One part of a repo id (`namespace` or `name`): Hub rules, roughly (no `--`, no `..`, ≤ 96 chars). */
function validPart(part: string): boolean {
  return PART.test(part) && !part.includes('--') && !part.includes('..');
}

/** `namespace/name` that can be a Hub repo (not `models/x`, a local folder: docs/config.md §2). */
export function isRepoId(text: string): boolean {
  return modelPathKind(text) === 'hub';
}

/**
 * Whether text typed into the Hub box is a local folder path (`./x`, `/x`, `C:\\x`, `a/b/c`,
 * `models/x`: docs/config.md §2) rather than a mistyped repo id, to say where it belongs.
 */
export function isLocalPathInput(text: string): boolean {
  const value = text.trim();
  if (/^(?:[.~/\\]|[A-Za-z]:)/.test(value) || value.includes('\\')) return true;
  const parts = value.split('/');
  // `huggingface.co/org/name` is an address without its scheme, not a folder.
  if (parts.length > 2) return !parts[0].includes('.');
  return parts.length === 2 && parts.every(validPart) && modelPathKind(value) === 'local';
}

export interface RepoInput {
  readonly repo: string;
  readonly revision?: string;
}

/**
 * Reads what the user typed or pasted into the model box: `org/name`, `org/name@rev`, or a Hub URL
 * (`https://huggingface.co/org/name`, `…/tree/rev`). Undefined when it is not a repo id.
 */
export function parseRepoInput(text: string, hubUrl = DEFAULT_HUB_URL): RepoInput | undefined {
  let value = text.trim();
  const origins = [hubUrl.replace(/\/+$/, ''), DEFAULT_HUB_URL];
  for (const origin of origins) {
    if (value.toLowerCase().startsWith(`${origin.toLowerCase()}/`)) {
      const rest = value.slice(origin.length + 1).split(/[?#]/)[0].replace(/\/+$/, '');
      const [ns, name, kind, rev] = rest.split('/');
      if (ns === 'datasets' || ns === 'spaces') return undefined;
      value = kind === 'tree' || kind === 'blob' ? `${ns}/${name}@${rev ?? ''}` : `${ns}/${name}`;
      break;
    }
  }
  const at = value.indexOf('@');
  const repo = at < 0 ? value : value.slice(0, at);
  const revision = at < 0 ? undefined : value.slice(at + 1).trim();
  if (!isRepoId(repo)) return undefined;
  if (revision !== undefined && (revision === '' || /[\s@+]/.test(revision))) return undefined;
  return revision ? { repo, revision } : { repo };
}

/** The model key (YAML reference) of a Hub repo. */
export function repoKey(input: RepoInput): string {
  return input.revision ? `${input.repo}@${input.revision}` : input.repo;
}

/**
 * A Hub model key (`org/name[@rev]`) → its repo and revision; undefined for local folders
 * (`models/ft_a`, `./x`, `C:\\x`…: docs/config.md §2) and other names.
 */
export function hubRefFromKey(key: string): RepoInput | undefined {
  if (key.includes('+')) return undefined;
  return parseRepoInput(key);
}

/** Why a name for a new repo is not acceptable, or undefined when it is (`name` or `namespace/name`). */
export function repoNameProblem(text: string): string | undefined {
  const value = text.trim();
  if (value === '') return 'Enter a name for the new repository.';
  const parts = value.split('/');
  if (parts.length > 2) return 'Use name or namespace/name (one slash at most).';
  for (const part of parts) {
    if (part.length > 96) return 'Each part of the name must be at most 96 characters.';
    if (!validPart(part)) {
      return 'Use letters, digits, "-", "_" and "."; start and end with a letter or digit; no "--" or "..".';
    }
  }
  return undefined;
}

/** A name for the output suggested from the config: `<method>-<first model name>`, cleaned for the Hub. */
export function suggestOutputName(method: string, models: readonly string[]): string {
  const first = models[0]?.split('@')[0].split('/').pop() ?? 'model';
  const name = `${first}-${method || 'merge'}`.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/-{2,}/g, '-').replace(/\.{2,}/g, '.');
  return name.replace(/^[-._]+|[-._]+$/g, '').slice(0, 96) || 'merged-model';
}

/** The Hub URL to use: a valid `?hub=` query parameter, else the saved setting, else huggingface.co. */
export function resolveHubUrl(search: string, saved: string | undefined): string {
  const fromQuery = new URLSearchParams(search).get('hub');
  for (const candidate of [fromQuery, saved]) {
    const normalized = candidate ? normalizeHubUrl(candidate) : undefined;
    if (normalized) return normalized;
  }
  return DEFAULT_HUB_URL;
}

/** `https://host[:port][/path]` without a trailing slash, or undefined when it is not an http(s) URL. */
export function normalizeHubUrl(text: string): string | undefined {
  try {
    const url = new URL(text.trim());
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    if (url.username || url.password) return undefined;
    return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  } catch {
    return undefined;
  }
}

/** Link to a model on the Hub (for display); undefined for local models. */
export function hubModelUrl(hubUrl: string, key: string): string | undefined {
  const ref = hubRefFromKey(key);
  if (!ref) return undefined;
  return ref.revision ? `${hubUrl}/${ref.repo}/tree/${encodeURIComponent(ref.revision)}` : `${hubUrl}/${ref.repo}`;
}
