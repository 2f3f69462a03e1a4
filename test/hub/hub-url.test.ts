import { describe, expect, it } from 'vitest';
import { hubOrigin, hubUrlProblem } from '../../src/hub';

describe('hubUrlProblem', () => {
  it('accepts https anywhere and http on this machine only', () => {
    for (const ok of ['https://huggingface.co', 'https://mirror.example.org/hub', 'http://localhost:8080', 'http://127.0.0.1:5000', 'http://[::1]:3000', 'HTTP://LOCALHOST']) {
      expect(hubUrlProblem(ok), ok).toBeUndefined();
    }
  });
  it('refuses plain http elsewhere, credentials in the URL and other schemes', () => {
    expect(hubUrlProblem('http://huggingface.co')).toMatch(/^Plain http:\/\/ is refused .*\(huggingface\.co\)/);
    expect(hubUrlProblem('http://127.0.0.2')).toMatch(/Plain http/);
    expect(hubUrlProblem('http://localhost.evil.com')).toMatch(/Plain http/);
    expect(hubUrlProblem('https://user:pw@huggingface.co')).toMatch(/user name or password/);
    expect(hubUrlProblem('ftp://huggingface.co')).toMatch(/https address/);
    expect(hubUrlProblem('javascript:alert(1)')).toMatch(/https address/);
    expect(hubUrlProblem('not a url')).toMatch(/https address/);
  });
  it('gives the origin a token is kept under', () => {
    expect(hubOrigin('https://huggingface.co/some/path')).toBe('https://huggingface.co');
    expect(hubOrigin('http://127.0.0.1:81/')).toBe('http://127.0.0.1:81');
    expect(hubOrigin('nope')).toBeUndefined();
  });
});
