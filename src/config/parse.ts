import { ConfigError, UnsupportedConfigError, type ConfigIssue } from './errors';
import { IssueList } from './issues';
import { readConfig } from './read-config';
import type { MergeConfig } from './types';
import { collectConfigIssues, unsupportedByAlloy } from './validate';
import { detectConfigKind } from './config-kind';
import { readYamlDocument, type YamlDocument } from './yaml-document';

export interface ParsedMergeConfig {
  config: MergeConfig;
  /** Things mergekit would accept but that probably are not what was meant (unknown keys, ignored parameters…). */
  warnings: ConfigIssue[];
}

/**
 * Parses and validates a mergekit YAML config for Alloy to merge. Throws a ConfigError listing every
 * error found, each with its YAML path, line and column; then, for a config that is valid for
 * mergekit but uses what Alloy cannot run yet (a merge method not implemented, LoRA adapters, a
 * mergekit-moe config), an UnsupportedConfigError. `validateConfigText` checks validity only.
 */
export function parseMergeConfig(yamlText: string, file?: string): ParsedMergeConfig {
  const doc = readYamlDocument(yamlText);
  if (doc.readable && detectConfigKind(doc.root) === 'moe') {
    throw new UnsupportedConfigError(
      [
        doc.locate({
          path: 'experts',
          message:
            "this is a mergekit-moe config (experts:, no merge_method): build it with `alloy moe CONFIG OUT_DIR` or in the app's experts editor",
          severity: 'error',
        }),
      ],
      file,
    );
  }
  const { config, issues } = checkMergeDocument(doc);
  const warnings = issues.filter((i) => i.severity === 'warning');
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) throw new ConfigError(errors, file, warnings);
  const unsupported = unsupportedByAlloy(config).map((issue) => doc.locate(issue));
  warnings.push(...unsupported.filter((i) => i.severity === 'warning'));
  const blocking = unsupported.filter((i) => i.severity === 'error');
  if (blocking.length > 0) throw new UnsupportedConfigError(blocking, file, warnings);
  return { config, warnings };
}

export interface MergeConfigCheck {
  /** The config as far as it could be read (only meaningful when `issues` holds no error). */
  readonly config: MergeConfig;
  /** Every error and warning mergekit's rules give, with line and column, in file order. */
  readonly issues: ConfigIssue[];
}

/** Checks a merge config document against mergekit's rules (what mergekit accepts), without throwing. */
export function checkMergeDocument(doc: YamlDocument): MergeConfigCheck {
  if (!doc.readable) return { config: { merge_method: '' }, issues: [...doc.issues] };
  const issues = new IssueList();
  const read = readConfig(doc.root, issues);
  const readErrorPaths = new Set(issues.issues.filter((i) => i.severity === 'error').map((i) => i.path));
  const checks = collectConfigIssues(read.config, {
    methodName: read.methodNamed,
    methodRules: read.methodNamed && read.layoutReadable,
  });
  // A value that could not be read was reported already; the cross-key checks would only repeat it.
  issues.add(checks.filter((i) => !(i.severity === 'error' && readErrorPaths.has(i.path))));
  return { config: read.config, issues: sortIssues([...doc.issues, ...issues.issues.map((issue) => doc.locate(issue))]) };
}

/** File order (line, then column); issues without a position last. Stable. */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || (a.issue.column ?? 0) - (b.issue.column ?? 0) || a.i - b.i)
    .map(({ issue }) => issue);
}
