import { describe, expect, it } from 'vitest';
import { configFromHash, configHash, decodeConfig, encodeConfig, shareLink } from '../../src/ui/lib/share-url';

const YAML = `models:\n  - model: org/a\n    parameters:\n      weight: 1.0\n  - model: org/b\n    parameters:\n      weight: 0.5 # ünïcödé comment\nmerge_method: linear\n`;

describe('share links', () => {
  it('round-trips a config through the hash, URL-safe', async () => {
    const encoded = await encodeConfig(YAML);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(await decodeConfig(encoded)).toBe(YAML);
    const hash = await configHash(YAML);
    expect(hash.startsWith('#config=')).toBe(true);
    expect(await configFromHash(hash)).toBe(YAML);
  });

  it('compresses long configs', async () => {
    const long = YAML.repeat(20);
    expect((await encodeConfig(long)).length).toBeLessThan(long.length / 4);
  });

  it('has no config for an empty hash and a readable error for a damaged one', async () => {
    expect(await configFromHash('')).toBeUndefined();
    expect(await configFromHash('#other=1')).toBeUndefined();
    await expect(configFromHash('#config=AAAA!!')).rejects.toThrow(/cannot be read/);
  });

  it('keeps the query (e.g. ?hub=) in the link', async () => {
    const link = await shareLink({ origin: 'http://127.0.0.1:4173', pathname: '/', search: '?hub=http://127.0.0.1:9' }, YAML);
    expect(link.startsWith('http://127.0.0.1:4173/?hub=http://127.0.0.1:9#config=')).toBe(true);
  });
});
