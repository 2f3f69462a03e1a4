import { explainHubError, FailureRecorder, HubError, tokenSettingsUrl, type HubCallContext } from '../errors';
import type { HubFile } from '../types';

export type Fetch = typeof globalThis.fetch;

/** What every endpoint function needs: where the Hub is, who asks, and how to fetch. */
export interface HubContext {
  /** Without a trailing slash. */
  readonly hubUrl: string;
  readonly accessToken: string | undefined;
  readonly fetch: Fetch;
}

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export function isHubRepoId(id: string): boolean {
  return REPO_RE.test(id);
}

export function checkRepoId(repo: string): void {
  if (!isHubRepoId(repo)) {
    throw new HubError(`"${repo}" is not a Hub model id: it must look like namespace/name (e.g. meta-llama/Llama-3.2-1B)`, 'other');
  }
}

/** The library's credentials argument: none without a token. */
export function credentials(ctx: HubContext): { accessToken: string } | Record<string, never> {
  return ctx.accessToken ? { accessToken: ctx.accessToken } : {};
}

export function requireToken(ctx: HubContext, action: string): string {
  if (!ctx.accessToken) {
    throw new HubError(`sign in to ${action}: create an access token with write access at ${tokenSettingsUrl(ctx.hubUrl)}`, 'bad-token');
  }
  return ctx.accessToken;
}

/** What a failure message says about the call (see explainHubError). */
export function callContext(ctx: HubContext, partial: Omit<HubCallContext, 'hubUrl' | 'authenticated'>): HubCallContext {
  return { hubUrl: ctx.hubUrl, authenticated: ctx.accessToken !== undefined, ...partial };
}

/**
 * Runs one library call with a fetch that carries the abort signal and records failures, and
 * turns what it throws into a HubError.
 */
export async function callHub<T>(
  ctx: HubContext,
  context: HubCallContext,
  signal: AbortSignal | undefined,
  run: (fetch: Fetch) => Promise<T>,
  wrap: (inner: Fetch) => Fetch = (f) => f,
): Promise<T> {
  const base = ctx.fetch;
  const withSignal: Fetch = signal
    ? (input, init) => base(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal })
    : base;
  const recorder = new FailureRecorder(wrap(withSignal));
  try {
    signal?.throwIfAborted();
    return await run(recorder.fetch);
  } catch (error) {
    if (signal?.aborted) throw new HubError('cancelled', 'aborted', undefined, { cause: error });
    throw explainHubError(error, context, recorder.last);
  }
}

/** A file entry of the tree or paths-info endpoints, with the LFS size and sha256 when it has them. */
export function toHubFile(entry: { path: string; size: number; oid?: string; lfs?: { oid: string; size: number }; xetHash?: string }): HubFile {
  return {
    path: entry.path,
    size: entry.lfs?.size ?? entry.size,
    ...(entry.oid ? { oid: entry.oid } : {}),
    ...(entry.lfs?.oid ? { sha256: entry.lfs.oid } : {}),
    ...(entry.xetHash ? { xetHash: entry.xetHash } : {}),
  };
}
