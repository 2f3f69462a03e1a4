/**
 * "Sign in with Hugging Face" (OAuth PKCE) on the main thread, with @huggingface/hub's helpers
 * (they need window, localStorage and the global fetch, so they cannot run in the worker). Offered
 * when a client id is known: the one a static Space injects (`window.huggingface.variables`,
 * with `hf_oauth: true` in its README), else one configured at build time
 * (VITE_HF_OAUTH_CLIENT_ID). The library is loaded on demand so the page does not carry it otherwise.
 */
import { ALLOY_OAUTH_SCOPES } from '../../hub/oauth-scopes';

const BUILD_CLIENT_ID: string | undefined = (import.meta.env.VITE_HF_OAUTH_CLIENT_ID as string | undefined) || undefined;

/** Read private and gated inputs, create the output repo and push to it. */
export const OAUTH_SCOPES = ['openid', 'profile', ...ALLOY_OAUTH_SCOPES].join(' ');

/** The query parameter with which the app, opened in its own tab from a frame, starts sign-in. */
export const SIGN_IN_PARAM = 'signin';

export interface OAuthSession {
  readonly accessToken: string;
  readonly expiresAt: number;
  readonly username: string;
}

/** The OAuth client id: the Space's, else the build's; undefined when sign-in is not configured. */
export function oauthClientId(): string | undefined {
  const variables = (globalThis as { huggingface?: { variables?: Record<string, unknown> } }).huggingface?.variables;
  const fromSpace = variables?.OAUTH_CLIENT_ID;
  return (typeof fromSpace === 'string' && fromSpace) || BUILD_CLIENT_ID;
}

/**
 * True inside a frame (the Space page shows the app in an iframe of another site): the browser
 * partitions the frame's storage, so an OAuth round trip started there cannot be finished in
 * another tab; the app opens itself in its own tab instead.
 */
export function inFrame(): boolean {
  try {
    return window.top !== window;
  } catch {
    return true;
  }
}

/** This page's address in its own tab, asking it to start sign-in (query and hash kept). */
export function ownTabSignInUrl(href: string): string {
  const url = new URL(href);
  url.searchParams.set(SIGN_IN_PARAM, 'hf');
  return url.href;
}

/** The page was opened by the Hub's redirect after sign-in. */
export function isOAuthRedirect(search: string): boolean {
  const params = new URLSearchParams(search);
  return params.has('code') && params.has('state');
}

export async function startOAuth(hubUrl: string, redirectUrl: string): Promise<void> {
  const clientId = oauthClientId();
  if (!clientId) throw new Error('Sign-in with Hugging Face is not configured for this deployment: use an access token.');
  const { oauthLoginUrl } = await import('@huggingface/hub');
  window.location.href = await oauthLoginUrl({ clientId, hubUrl, scopes: OAUTH_SCOPES, redirectUrl });
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
