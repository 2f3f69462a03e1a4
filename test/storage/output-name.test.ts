import { describe, expect, it } from 'vitest';
import { outputNameProblem } from '../../src/storage';

describe('outputNameProblem (the one rule for the engine and the Output name field)', () => {
  it('accepts plain folder names, including ones that are not valid Hub repo names', () => {
    for (const name of ['merged', 'Mistral-7B-v0.1-ties', 'my model (v2)', 'a'.repeat(200), 'é+ü']) expect(outputNameProblem(name), name).toBeNull();
  });

  it('names the characters a file name cannot hold, once each, escaped, and says what to do', () => {
    expect(outputNameProblem('a:b:c?')).toBe('the output name "a:b:c?" contains characters that file names cannot hold (: ?): remove them');
    expect(outputNameProblem('bad\u001bname')).toBe('the output name "bad\\x1bname" contains characters that file names cannot hold (\\x1b): remove them');
  });

  it('refuses empty, too long, dotted and slashed names', () => {
    expect(outputNameProblem('  ')).toBe('the output name is empty');
    expect(outputNameProblem('a'.repeat(201))).toBe('the output name is longer than 200 characters: choose a shorter one');
    expect(outputNameProblem('.hidden')).toBe('the output name ".hidden" starts with a dot: remove it');
    expect(outputNameProblem('org/name')).toBe('the output name "org/name" contains a slash: use a plain folder name (the Hub repo is chosen when pushing)');
    expect(outputNameProblem('a\\b')).toMatch(/contains a slash/);
  });

  it('cuts a long name in the message', () => {
    const problem = outputNameProblem(`${'x'.repeat(150)}|`)!;
    expect(problem.length).toBeLessThan(200);
    expect(problem).toMatch(/^the output name "x{80}… \(71 more characters\)" contains characters/);
  });
});
