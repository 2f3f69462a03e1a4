import { detectConfigKind, guessConfigKind, type ConfigKind } from './config-kind';
import type { ConfigIssue } from './errors';
import { checkMoeDocument } from './moe/index';
import { checkMergeDocument } from './parse';
import { readYamlDocument } from './yaml-document';

export interface ConfigValidation {
  /** No error (warnings allowed): mergekit (or mergekit-moe) would accept the config. */
  readonly ok: boolean;
  /** Errors and warnings in file order, each with its YAML path and, when known, line and column. */
  readonly issues: ConfigIssue[];
  readonly kind: ConfigKind;
  readonly file?: string;
}

/**
 * Validates a config text the way mergekit would read it, with no model files and no network: a
 * merge config (mergekit-yaml) or, when it has `experts:` and no `merge_method`, a mergekit-moe
 * config. Accepts every config mergekit accepts (including methods, LoRA references and MoE configs
 * that Alloy cannot run yet: merging reports those), and rejects the rest with pointed errors,
 * including the errors mergekit would only raise during the merge (DELLA's density ± epsilon, TIES
 * density 0, missing parameters…). Never throws: the browser app runs it as the user types.
 */
export function validateConfigText(text: string, file?: string): ConfigValidation {
  let kind: ConfigKind = 'merge';
  try {
    const doc = readYamlDocument(text);
    kind = doc.readable ? detectConfigKind(doc.root) : guessConfigKind(text);
    const { issues } = kind === 'moe' ? checkMoeDocument(doc) : checkMergeDocument(doc);
    return result(issues, kind, file);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return result([{ path: '', message: `internal error while validating: ${message}`, severity: 'error', line: 1, column: 1 }], kind, file);
  }
}

function result(issues: ConfigIssue[], kind: ConfigKind, file: string | undefined): ConfigValidation {
  const ok = !issues.some((i) => i.severity === 'error');
  return file === undefined ? { ok, issues, kind } : { ok, issues, kind, file };
}
