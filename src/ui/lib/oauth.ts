/**
 * "Sign in with Hugging Face" (OAuth PKCE) on the main thread, with @huggingface/hub's helpers
 * (they need window, localStorage and the global fetch, so they cannot run in the worker). Offered
 * only when a client id is configured at build time (VITE_HF_OAUTH_CLIENT_ID); the library is
 * loaded on demand so the page does not carry it otherwise.
 */

export const OAUTH_CLIENT_ID: string | undefined = (import.meta.env.VITE_HF_OAUTH_CLIENT_ID as string | undefined) || undefined;

/** Scopes for pushing a new model: create repos and write to them. */
export const OAUTH_SCOPES = 'openid profile write-repos manage-repos';

export interface OAuthSession {
  readonly accessToken: string;
  readonly expiresAt: number;
  readonly username: string;
}

/** The page was opened by the Hub's redirect after sign-in. */
export function isOAuthRedirect(search: string): boolean {
  const params = new URLSearchParams(search);
  return params.has('code') && params.has('state');
}

export async function startOAuth(hubUrl: string, redirectUrl: string): Promise<void> {
  if (!OAUTH_CLIENT_ID) throw new Error('Sign-in with Hugging Face is not configured for this deployment: use an access token.');
  const { oauthLoginUrl } = await import('@huggingface/hub');
  window.location.href = await oauthLoginUrl({ clientId: OAUTH_CLIENT_ID, hubUrl, scopes: OAUTH_SCOPES, redirectUrl });
}

/** Completes a sign-in after the redirect; undefined when the page was not opened by one. */
export async function finishOAuth(hubUrl: string): Promise<OAuthSession | undefined> {
  if (!isOAuthRedirect(window.location.search)) return undefined;
  const { oauthHandleRedirectIfPresent } = await import('@huggingface/hub');
  const result = await oauthHandleRedirectIfPresent({ hubUrl });
  if (!result) return undefined;
  return {
    accessToken: result.accessToken,
    expiresAt: result.accessTokenExpiresAt.getTime(),
    username: result.userInfo.preferred_username,
  };
}
