import { describe, expect, it } from 'vitest';
import { baseModelsFromCard } from '../../src/hub';

describe('baseModelsFromCard', () => {
  it('reads a list or a single base_model from the front matter', () => {
    expect(baseModelsFromCard('---\nbase_model:\n- a/b\n- c/d\ntags: [merge]\n---\n# hi\n')).toEqual(['a/b', 'c/d']);
    expect(baseModelsFromCard('---\r\nlicense: mit\r\nbase_model: mistralai/Mistral-7B-v0.1\r\n---\r\n')).toEqual(['mistralai/Mistral-7B-v0.1']);
  });
  it('says "unknown" for cards without front matter, without base_model, or with broken YAML', () => {
    expect(baseModelsFromCard('# Model\nbase_model: x/y')).toBeUndefined();
    expect(baseModelsFromCard('---\nlicense: mit\n---\n')).toBeUndefined();
    expect(baseModelsFromCard('---\nbase_model: [a/b\n---\n')).toBeUndefined();
  });
});
