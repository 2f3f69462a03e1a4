import { describe, expect, it } from 'vitest';
import { configFromHash, configHash, decodeConfig, encodeConfig, LinkTooLargeError, MAX_LINK_CONFIG_BYTES, MAX_LINK_CONFIG_CHARS, shareLink } from '../../src/ui/lib/share-url';

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

  it('opens a config of exactly the size cap, and refuses one byte more, before it is all unpacked', async () => {
    const line = '# padding padding padding padding padding padding padding\n';
    const atCap = ('merge_method: linear\n' + line.repeat(Math.ceil(MAX_LINK_CONFIG_BYTES / line.length))).slice(0, MAX_LINK_CONFIG_BYTES);
    expect(new TextEncoder().encode(atCap).byteLength).toBe(MAX_LINK_CONFIG_BYTES);
    expect(await decodeConfig(await encodeConfig(atCap))).toBe(atCap);
    await expect(decodeConfig(await encodeConfig(atCap + 'x'))).rejects.toThrow(LinkTooLargeError);

    // A deflate bomb: 64 MB of one letter is a link of about 90 KB; refused with a message, not decoded.
    const bomb = await encodeConfig('a'.repeat(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(MAX_LINK_CONFIG_CHARS);
    await expect(configFromHash(`#config=${bomb}`)).rejects.toThrow(/^The config in this link unpacks to more than 256 KB \(the limit for links\); it was not opened/);
  });

  it('refuses a link longer than any config within the cap without decoding it', async () => {
    const long = 'A'.repeat(MAX_LINK_CONFIG_CHARS + 1);
    await expect(configFromHash(`#config=${long}`)).rejects.toThrow(/^The link is too long \([\d,]+ characters\) to carry a config Alloy opens/);
  });

  it('keeps the query (e.g. ?hub=) in the link', async () => {
    const link = await shareLink({ origin: 'http://127.0.0.1:4173', pathname: '/', search: '?hub=http://127.0.0.1:9' }, YAML);
    expect(link.startsWith('http://127.0.0.1:4173/?hub=http://127.0.0.1:9#config=')).toBe(true);
  });
});
