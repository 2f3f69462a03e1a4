import { describe, expect, it } from 'vitest';
import type { HubClient } from '../../src/hub';
import { HubModelFolder } from '../../src/storage/browser';
import { hubFileSpec } from '../../src/worker/model-sources';

const commit = 'a'.repeat(40);
const files = [
  { path: 'model.safetensors', size: 1234, oid: 'b'.repeat(40), sha256: 'c'.repeat(64) },
  { path: 'config.json', size: 56, oid: 'd'.repeat(40) },
  { path: 'weights.bin', size: 78 },
];
const hub = new HubModelFolder({} as HubClient, { repo: 'org/model', revision: 'main', commit, files });

describe('hubFileSpec', () => {
  it('pins a Hub file to its commit and checks it by sha256 when the Hub gives one (LFS), else by git blob id', () => {
    expect(hubFileSpec('org/model', hub, files[0])).toEqual({ repo: 'org/model', commit, path: 'model.safetensors', size: 1234, sha256: 'c'.repeat(64) });
    expect(hubFileSpec('org/model', hub, files[1])).toEqual({ repo: 'org/model', commit, path: 'config.json', size: 56, gitOid: 'd'.repeat(40) });
  });

  it('refuses a file the Hub lists without any hash: its download could not be verified', () => {
    expect(() => hubFileSpec('base', hub, files[2])).toThrow('Model base: the Hub listed no hash for weights.bin of org/model, so its download cannot be verified');
  });
});
