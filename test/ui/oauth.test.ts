import { afterEach, describe, expect, it } from 'vitest';
import { isOAuthRedirect, OAUTH_SCOPES, oauthClientId, ownTabSignInUrl } from '../../src/ui/lib/oauth';

const scope = globalThis as { huggingface?: unknown };
afterEach(() => {
  delete scope.huggingface;
});

describe('sign-in with Hugging Face', () => {
  it('takes the client id a static Space injects; none without one (and no build-time id)', () => {
    expect(oauthClientId()).toBeUndefined();
    scope.huggingface = { variables: { OAUTH_CLIENT_ID: 'abc-123', OAUTH_SCOPES: 'openid profile' } };
    expect(oauthClientId()).toBe('abc-123');
    scope.huggingface = { variables: { OAUTH_CLIENT_ID: 42 } };
    expect(oauthClientId()).toBeUndefined();
  });

  it('asks for the scopes the Space README lists, plus openid profile', () => {
    expect(OAUTH_SCOPES).toBe('openid profile read-repos gated-repos write-repos manage-repos');
  });

  it('opens its own tab with ?signin=hf, keeping the query and the shared config', () => {
    expect(ownTabSignInUrl('https://me-alloy.hf.space/?hub=https%3A%2F%2Fhf.example#c=abc')).toBe(
      'https://me-alloy.hf.space/?hub=https%3A%2F%2Fhf.example&signin=hf#c=abc',
    );
  });

  it('recognises the redirect only with both code and state', () => {
    expect(isOAuthRedirect('?code=x&state=y')).toBe(true);
    expect(isOAuthRedirect('?code=x')).toBe(false);
    expect(isOAuthRedirect('?hub=x')).toBe(false);
  });
});
