/**
 * Problems found in a merge config, each pointing at the YAML path (and, when the config came from
 * YAML text, the line and column) of the offending node.
 */
export interface ConfigIssue {
  /** YAML path such as `models[1].parameters.density`; `""` for the document root. */
  path: string;
  message: string;
  /** 1-based line of the offending node (only when parsed from YAML text). */
  line?: number;
  /** 1-based column of the offending node (only when parsed from YAML text). */
  column?: number;
  severity: 'error' | 'warning';
}

/** `file:line:col: path: message`, leaving out the parts that are unknown. */
export function formatIssue(issue: ConfigIssue, file?: string): string {
  const where = [file, issue.line, issue.line !== undefined ? issue.column : undefined]
    .filter((part) => part !== undefined && part !== '')
    .join(':');
  const parts = [where, issue.path, issue.message].filter((part) => part !== '');
  return parts.join(': ');
}

/** A config that cannot be used; `issues` holds every error found (not just the first). */
export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  /** Warnings found on the way; they do not make the config invalid. */
  readonly warnings: ConfigIssue[];
  readonly file?: string;

  constructor(issues: ConfigIssue[], file?: string, warnings: ConfigIssue[] = []) {
    const errors = issues.filter((issue) => issue.severity === 'error');
    const listed = errors.length > 0 ? errors : issues;
    const count = `${listed.length} error${listed.length === 1 ? '' : 's'}`;
    super(
      `Invalid merge config${file ? ` ${file}` : ''} (${count}):\n` +
        listed.map((issue) => formatIssue(issue, file)).join('\n'),
    );
    this.name = 'ConfigError';
    this.issues = listed;
    this.warnings = warnings;
    if (file !== undefined) this.file = file;
  }
}

/**
 * A config that is valid for mergekit but uses something Alloy cannot run yet (a merge method not
 * implemented, LoRA adapters, a mergekit-moe config). `alloy validate` accepts such configs.
 */
export class UnsupportedConfigError extends ConfigError {
  constructor(issues: ConfigIssue[], file?: string, warnings: ConfigIssue[] = []) {
    super(issues, file, warnings);
    this.name = 'UnsupportedConfigError';
    this.message =
      `cannot merge ${file ?? 'this config'} with Alloy yet:\n` +
      this.issues.map((issue) => formatIssue(issue, file)).join('\n');
  }
}
