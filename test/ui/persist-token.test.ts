/**
 * Remembered tokens are kept per Hub origin (issue 10, item 4): a token comes back only for the
 * origin it was entered for, forgetting one origin's keeps the others', and the single token of
 * older versions is moved under its own origin.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';

const stored = new Map<string, unknown>();
vi.mock('idb-keyval', () => ({
  createStore: () => ({}),
  get: async (key: string) => stored.get(key),
  set: async (key: string, value: unknown) => void stored.set(key, structuredClone(value)),
  del: async (key: string) => void stored.delete(key),
}));

const { loadToken, saveToken } = await import('../../src/ui/lib/persist');

const HF = 'https://huggingface.co';
const MIRROR = 'https://mirror.example.org';

beforeEach(() => stored.clear());

describe('remembered tokens', () => {
  it('are kept per Hub origin and given back only for their own', async () => {
    await saveToken(HF, { token: 'hf_one', hubUrl: HF, username: 'me' });
    await saveToken(MIRROR, { token: 'hf_two', hubUrl: `${MIRROR}/hub` });
    expect(await loadToken(HF)).toEqual({ token: 'hf_one', hubUrl: HF, username: 'me' });
    expect((await loadToken(MIRROR))?.token).toBe('hf_two');
    expect(await loadToken('https://evil.example')).toBeUndefined();
    expect(await loadToken('http://huggingface.co')).toBeUndefined();
  });

  it('forgets one origin’s token (sign-out) and keeps the others’; nothing is left once all are gone', async () => {
    await saveToken(HF, { token: 'hf_one', hubUrl: HF });
    await saveToken(MIRROR, { token: 'hf_two', hubUrl: MIRROR });
    await saveToken(HF, undefined);
    expect(await loadToken(HF)).toBeUndefined();
    expect((await loadToken(MIRROR))?.token).toBe('hf_two');
    await saveToken(MIRROR, undefined);
    expect([...stored.keys()]).toEqual([]);
  });

  it('reads the single token of older versions for its own origin only, and moves it on the next save', async () => {
    stored.set('hf-token', { token: 'hf_old', hubUrl: HF });
    expect((await loadToken(HF))?.token).toBe('hf_old');
    expect(await loadToken(MIRROR)).toBeUndefined();
    // Signing out of the mirror keeps the old huggingface.co token, now under its origin.
    await saveToken(MIRROR, undefined);
    expect(stored.has('hf-token')).toBe(false);
    expect((await loadToken(HF))?.token).toBe('hf_old');
    // Signing out of huggingface.co removes it.
    await saveToken(HF, undefined);
    expect(await loadToken(HF)).toBeUndefined();
    expect([...stored.keys()]).toEqual([]);
  });

  it('keeps the old token when another origin’s token is saved', async () => {
    stored.set('hf-token', { token: 'hf_old', hubUrl: HF });
    await saveToken(MIRROR, { token: 'hf_two', hubUrl: MIRROR });
    expect(stored.has('hf-token')).toBe(false);
    expect((await loadToken(HF))?.token).toBe('hf_old');
    expect((await loadToken(MIRROR))?.token).toBe('hf_two');
  });
});
