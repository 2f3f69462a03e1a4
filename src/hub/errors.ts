import { HubApiError } from '@huggingface/hub';
import { formatWait, parseRetryAfter } from './rate-limit';

/**
 * Hub failures as messages a user can act on. `@huggingface/hub` throws `HubApiError` with the
 * status but not the response headers, so each call goes through a {@link FailureRecorder} that
 * keeps the `X-Error-Code` of the last failed response (RepoNotFound, EntryNotFound, GatedRepo…).
 */

export type HubErrorKind =
  | 'bad-token'
  | 'not-a-token'
  | 'read-only-token'
  | 'repo-not-found'
  | 'revision-not-found'
  | 'file-not-found'
  | 'gated'
  | 'forbidden'
  | 'rate-limited'
  | 'server'
  | 'network'
  | 'aborted'
  /** The bytes did not match the hash the Hub lists for the file. */
  | 'integrity'
  | 'other';

export class HubError extends Error {
  constructor(
    message: string,
    readonly kind: HubErrorKind,
    /** HTTP status when the Hub answered. */
    readonly status?: number,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.name = 'HubError';
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }

  /** For a 429: how long the Hub asked to wait (`Retry-After`), when it said so readably. */
  readonly retryAfterMs?: number;

  /** Worth trying again after a pause: the network or the server, not the request. */
  get retryable(): boolean {
    return this.kind === 'network' || this.kind === 'server' || this.kind === 'rate-limited';
  }
}

/** What failed, for the message. */
export interface HubCallContext {
  readonly hubUrl: string;
  readonly repo?: string;
  readonly revision?: string;
  readonly path?: string;
  /** A short verb phrase: "list the files of", "create", "upload to"… */
  readonly action?: string;
  /** The call needs write access (messages about tokens say so). */
  readonly write?: boolean;
  /** An access token was sent (a 401 then means the token is bad, not that one is missing). */
  readonly authenticated?: boolean;
}

export interface RecordedFailure {
  readonly status: number;
  readonly errorCode: string | null;
  readonly url: string;
  /** `Retry-After` in ms (429, 503), when present and exposed to JavaScript. */
  readonly retryAfterMs?: number;
}

/** A fetch wrapper that remembers the last non-OK response (status and X-Error-Code). */
export class FailureRecorder {
  last: RecordedFailure | null = null;
  readonly fetch: typeof fetch;

  constructor(inner: typeof fetch) {
    this.fetch = async (input, init) => {
      const response = await inner(input, init);
      if (!response.ok) {
        const retryAfterMs = parseRetryAfter(response.headers.get('Retry-After'));
        this.last = {
          status: response.status,
          errorCode: response.headers.get('X-Error-Code'),
          url: response.url,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        };
      }
      return response;
    };
  }
}

export function tokenSettingsUrl(hubUrl: string): string {
  return `${hubUrl.replace(/\/+$/, '')}/settings/tokens`;
}

function isAbort(error: unknown): boolean {
  return (
    (error instanceof DOMException && (error.name === 'AbortError' || error.name === 'TimeoutError')) ||
    (error instanceof Error && error.name === 'AbortError')
  );
}

/** Turns whatever a Hub call threw into a HubError with an actionable message. */
export function explainHubError(error: unknown, context: HubCallContext, failure: RecordedFailure | null = null): HubError {
  if (error instanceof HubError) return error;
  if (isAbort(error)) return new HubError('cancelled', 'aborted', undefined, { cause: error });
  const call = callWords(context);
  if (error instanceof TypeError && /must start with 'hf_'/.test(error.message)) {
    return new HubError(
      `this is not a Hugging Face access token (they start with "hf_"): create one at ${call.tokens}`,
      'not-a-token',
      undefined,
      { cause: error },
    );
  }
  if (error instanceof HubApiError) {
    const answer: HubAnswer = { error, status: error.statusCode, code: failure?.errorCode ?? null, failure };
    return missingThing(answer, context, call) ?? refusedAccess(answer, context, call) ?? otherStatus(answer, context, call);
  }
  if (error instanceof TypeError) {
    // fetch() rejects with a TypeError on network failures, DNS errors and CORS refusals.
    return new HubError(
      `could not reach the Hub at ${call.hub} (${error.message}): check your connection (or the Hub address)`,
      'network',
      undefined,
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new HubError(`Hub request failed while trying to ${context.action ?? 'read'} ${call.repo}: ${message}`, 'other', undefined, {
    cause: error,
  });
}

/** The words every message about one call uses. */
interface CallWords {
  /** The Hub's address without a trailing slash. */
  readonly hub: string;
  /** Where to create an access token. */
  readonly tokens: string;
  readonly repo: string;
}

function callWords(context: HubCallContext): CallWords {
  const hub = context.hubUrl.replace(/\/+$/, '');
  return { hub, tokens: tokenSettingsUrl(hub), repo: context.repo ?? 'the repository' };
}

/** A Hub API error response: its status, the Hub's X-Error-Code, and the response recorded with it. */
interface HubAnswer {
  readonly error: HubApiError;
  readonly status: number;
  readonly code: string | null;
  readonly failure: RecordedFailure | null;
}

/** No such repository, revision or file (404, or the Hub's error code saying which). */
function missingThing({ error, status, code }: HubAnswer, context: HubCallContext, { repo }: CallWords): HubError | null {
  if (code === 'RepoNotFound' || (status === 404 && !code && context.path === undefined && context.repo)) {
    return new HubError(
      `no model ${repo} on the Hub (${status === 404 ? '404' : `${status}, not found`}) — check the name, or sign in for private/gated models`,
      'repo-not-found',
      status,
      { cause: error },
    );
  }
  if (code === 'RevisionNotFound') {
    return new HubError(
      `${repo} has no revision "${context.revision ?? 'main'}" (404): check the branch, tag or commit`,
      'revision-not-found',
      status,
      { cause: error },
    );
  }
  if (code === 'EntryNotFound' || (status === 404 && context.path !== undefined)) {
    return new HubError(
      `${repo} has no file ${context.path ?? ''} at revision ${context.revision ?? 'main'} (404)`,
      'file-not-found',
      status,
      { cause: error },
    );
  }
  return null;
}

/** A gated repository, a missing or rejected token, or a token without the rights (401, 403). */
function refusedAccess({ error, status, code }: HubAnswer, context: HubCallContext, { hub, tokens, repo }: CallWords): HubError | null {
  if (code === 'GatedRepo') {
    return new HubError(
      `${repo} is gated (${status}): accept its conditions at ${hub}/${repo} while signed in to the Hub, ` +
        `then sign in here with an access token from ${tokens}`,
      'gated',
      status,
      { cause: error },
    );
  }
  if (status === 401 && !context.authenticated) {
    return new HubError(
      `the Hub wants you signed in to ${context.action ?? 'read'} ${repo} (401): it may be private or gated; ` +
        `sign in with an access token from ${tokens}`,
      'forbidden',
      status,
      { cause: error },
    );
  }
  if (status === 401) {
    return new HubError(
      `the Hub rejected this token (401): create a token with write access at ${tokens}`,
      'bad-token',
      status,
      { cause: error },
    );
  }
  if (status === 403) {
    const detail = serverDetail(error);
    return new HubError(
      context.write
        ? `this token may not ${context.action ?? 'write to'} ${repo} (403)${detail}: create a token with write access at ${tokens}`
        : `the Hub refused access to ${repo} (403)${detail}: it may be private or gated; sign in with a token that can read it (${tokens})`,
      'forbidden',
      status,
      { cause: error },
    );
  }
  return null;
}

/** Any other answer: not found, rate-limited (with the Hub's wait), a server problem, or the bare status. */
function otherStatus({ error, status, failure }: HubAnswer, context: HubCallContext, { repo }: CallWords): HubError {
  const detail = serverDetail(error);
  if (status === 404) {
    return new HubError(`not found on the Hub (404) while trying to ${context.action ?? 'read'} ${repo}${detail}`, 'other', status, {
      cause: error,
    });
  }
  if (status === 429) {
    const retryAfterMs = failure?.status === 429 ? failure.retryAfterMs : undefined;
    const wait = retryAfterMs !== undefined ? `the Hub asks to wait ${formatWait(retryAfterMs)}` : 'wait a minute';
    return new HubError(
      `the Hub is rate-limiting requests (429) while trying to ${context.action ?? 'read'} ${repo}: ${wait} and try again` +
        (context.authenticated ? '' : ' (signed-in users get a higher limit)'),
      'rate-limited',
      status,
      { cause: error, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
    );
  }
  if (status >= 500 || status === 408) {
    return new HubError(`the Hub had a problem (${status}) while trying to ${context.action ?? 'read'} ${repo}: try again later`, 'server', status, {
      cause: error,
    });
  }
  return new HubError(`the Hub answered ${status} while trying to ${context.action ?? 'read'} ${repo}${detail}`, 'other', status, {
    cause: error,
  });
}

/** The server's own explanation, when it gave one in JSON (without the library's URL trailer). */
function serverDetail(error: HubApiError): string {
  const data = error.data as Record<string, unknown> | undefined;
  const text = typeof data?.error === 'string' ? data.error : typeof data?.message === 'string' ? data.message : '';
  const trimmed = text.trim().slice(0, 200);
  return trimmed ? ` ("${trimmed}")` : '';
}

