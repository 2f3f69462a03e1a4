/**
 * The OAuth scopes Alloy asks for when a user signs in with Hugging Face, and that a Space
 * hosting it must list in its README (`hf_oauth_scopes`): read private (`read-repos`) and gated
 * (`gated-repos`) inputs, create the output repo (`manage-repos`) and push to it (`write-repos`).
 * `openid profile` are always granted and need not be listed.
 */
export const ALLOY_OAUTH_SCOPES = ['read-repos', 'gated-repos', 'write-repos', 'manage-repos'] as const;
