import { describe, expect, it } from 'vitest';
import { escapeMessage, untrustedText } from '../../src/storage';

describe('untrustedText', () => {
  it('writes control characters, terminal escapes and direction overrides out', () => {
    expect(untrustedText('a\u001b[31mb\u0000c\u009bd\u007f\te\nf')).toBe('a\\x1b[31mb\\x00c\\x9bd\\x7f\\x09e\\x0af');
    expect(untrustedText('x\u202ey\u2066z\u2028w\ufeff')).toBe('x\\u202ey\\u2066z\\u2028w\\ufeff');
    // Lone surrogates are escaped, pairs kept.
    expect(untrustedText('\ud800a\udc00b😀')).toBe('\\ud800a\\udc00b😀');
    expect(untrustedText('plain ünïcode 名前')).toBe('plain ünïcode 名前');
  });

  it('cuts at 200 characters and says how many more there were, never inside a surrogate pair', () => {
    expect(untrustedText('x'.repeat(250))).toBe(`${'x'.repeat(200)}… (50 more characters)`);
    expect(untrustedText('x'.repeat(200))).toBe('x'.repeat(200));
    expect(untrustedText(`${'x'.repeat(199)}😀tail`)).toBe(`${'x'.repeat(199)}… (6 more characters)`);
    expect(untrustedText('abcdef', 3)).toBe('abc… (3 more characters)');
  });

  it('shows other values as JSON', () => {
    expect(untrustedText([1, 'a\u001b'])).toBe('[1,"a\\u001b"]');
    expect(untrustedText(undefined)).toBe('undefined');
  });

  it('escapeMessage keeps line breaks, escapes the rest, and is idempotent', () => {
    const once = escapeMessage('line 1\nline\u001b[2K 2\r');
    expect(once).toBe('line 1\nline\\x1b[2K 2\\x0d');
    expect(escapeMessage(once)).toBe(once);
  });
});
