import type { ConfigIssue } from './errors';
import { untrustedText as quoted } from '../storage';

/** Where an issue points: the value at its path (default) or the key that names it. */
export type IssueTarget = 'value' | 'key';

export interface LocatedIssue extends ConfigIssue {
  target?: IssueTarget;
}

/** Collects issues while a config is read, so that every problem is reported, not only the first. */
export class IssueList {
  readonly issues: LocatedIssue[] = [];

  error(path: string, message: string, target?: IssueTarget): void {
    this.issues.push(target ? { path, message, severity: 'error', target } : { path, message, severity: 'error' });
  }

  warning(path: string, message: string, target?: IssueTarget): void {
    this.issues.push(target ? { path, message, severity: 'warning', target } : { path, message, severity: 'warning' });
  }

  add(issues: readonly LocatedIssue[]): void {
    this.issues.push(...issues);
  }

  get hasErrors(): boolean {
    return this.issues.some((issue) => issue.severity === 'error');
  }
}

/** Plain mappings as `yaml`'s toJS gives them (not lists, not null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** A short description of a YAML value's kind for messages: "a string", "a list", … */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'empty (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `a string ('${quoted(value, 40)}')`;
  if (typeof value === 'number') return `a number (${value})`;
  if (typeof value === 'boolean') return `a boolean (${value})`;
  if (isMapping(value)) return 'a mapping';
  return 'an unsupported value';
}

export function withoutTarget(issue: LocatedIssue): ConfigIssue {
  const { target: _target, ...plain } = issue;
  return plain;
}
