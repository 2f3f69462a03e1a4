import { describe, expect, it } from 'vitest';
import { hubModelUrl, isLocalPathInput, parseRepoInput, repoKey, repoNameProblem, resolveHubUrl, suggestOutputName } from '../../src/ui/lib/hub-repo';

describe('repo input', () => {
  it('reads ids, revisions and Hub URLs', () => {
    expect(parseRepoInput('mistralai/Mistral-7B-v0.1')).toEqual({ repo: 'mistralai/Mistral-7B-v0.1' });
    expect(parseRepoInput(' org/name@v1.0 ')).toEqual({ repo: 'org/name', revision: 'v1.0' });
    expect(parseRepoInput('https://huggingface.co/org/name')).toEqual({ repo: 'org/name' });
    expect(parseRepoInput('https://huggingface.co/org/name/tree/dev')).toEqual({ repo: 'org/name', revision: 'dev' });
    expect(parseRepoInput('http://127.0.0.1:9000/org/name', 'http://127.0.0.1:9000')).toEqual({ repo: 'org/name' });
    expect(parseRepoInput('https://huggingface.co/datasets/org/name')).toBeUndefined();
    expect(parseRepoInput('gpt2')).toBeUndefined();
    // Pages of the Hub, not namespaces: a config's `models/ft_a` is a local folder (docs/config.md §2).
    expect(parseRepoInput('models/ft_a')).toBeUndefined();
    expect(parseRepoInput('datasets/x@main')).toBeUndefined();
    expect(parseRepoInput('org/na--me')).toBeUndefined();
    expect(parseRepoInput('org/name@')).toBeUndefined();
    expect(repoKey({ repo: 'a/b', revision: 'c' })).toBe('a/b@c');
  });

  it('validates names for new repos', () => {
    expect(repoNameProblem('my-merge')).toBeUndefined();
    expect(repoNameProblem('user/my.merge_2')).toBeUndefined();
    expect(repoNameProblem('')).toMatch(/Enter/);
    expect(repoNameProblem('a/b/c')).toMatch(/one slash/);
    expect(repoNameProblem('bad name')).toMatch(/letters/);
    expect(repoNameProblem('-x')).toMatch(/start and end/);
  });

  it('suggests an output name', () => {
    expect(suggestOutputName('ties', ['mistralai/Mistral-7B-v0.1@main'])).toBe('Mistral-7B-v0.1-ties');
    expect(suggestOutputName('', [])).toBe('model-merge');
  });
});

describe('hub url', () => {
  it('prefers a valid ?hub= parameter, then the saved setting', () => {
    expect(resolveHubUrl('?hub=http://127.0.0.1:8123/', 'https://mirror.example')).toBe('http://127.0.0.1:8123');
    expect(resolveHubUrl('?hub=javascript:alert(1)', 'https://mirror.example/')).toBe('https://mirror.example');
    expect(resolveHubUrl('', undefined)).toBe('https://huggingface.co');
  });
  it('tells local folder paths typed into the Hub box from mistyped repo ids', () => {
    for (const path of ['models/ft_a', './x', '../x', '/abs/path', '~/m', 'C:\\x', 'C:/x', 'dir\\m', 'a/b/c']) expect(isLocalPathInput(path), path).toBe(true);
    for (const text of ['org/na--me', 'org/name', 'gpt2', 'org/', 'huggingface.co/org/name', '']) expect(isLocalPathInput(text), text).toBe(false);
  });
  it('links Hub models only', () => {
    expect(hubModelUrl('https://huggingface.co', 'a/b@dev')).toBe('https://huggingface.co/a/b/tree/dev');
    expect(hubModelUrl('https://huggingface.co', 'local-folder')).toBeUndefined();
    for (const local of ['models/ft_a', './x', '../x', '/abs/path', 'C:\\x', 'C:/x']) expect(hubModelUrl('https://huggingface.co', local), local).toBeUndefined();
  });
});
