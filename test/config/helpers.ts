import { expect } from 'vitest';
import { ConfigError, parseMergeConfig, type ConfigIssue } from '../../src/config';

/** The errors parseMergeConfig throws for `yaml` (fails the test when it does not throw). */
export function errorsOf(yaml: string, file?: string): ConfigIssue[] {
  try {
    parseMergeConfig(yaml, file);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  expect.fail('expected a ConfigError');
}

/** The one error at `path`; checks its message and (when given) line and column. */
export function expectError(
  yaml: string,
  path: string,
  message: RegExp | string,
  at?: { line: number; column?: number },
): ConfigIssue {
  const errors = errorsOf(yaml);
  const found = errors.filter((e) => e.path === path);
  expect(found, `errors: ${JSON.stringify(errors, null, 1)}`).toHaveLength(1);
  const issue = found[0];
  expect(issue.severity).toBe('error');
  if (typeof message === 'string') expect(issue.message).toContain(message);
  else expect(issue.message).toMatch(message);
  if (at) {
    expect(issue.line).toBe(at.line);
    if (at.column !== undefined) expect(issue.column).toBe(at.column);
  }
  return issue;
}

export function warningsOf(yaml: string): ConfigIssue[] {
  return parseMergeConfig(yaml).warnings;
}
