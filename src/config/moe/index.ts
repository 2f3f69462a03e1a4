/**
 * mergekit-moe configs (docs/config.md §8): `base_model`, `experts`, `gate_mode`, … and no
 * `merge_method`. Read and validated with the same error format as merge configs; src/moe builds
 * them (`alloy moe`), `alloy validate` and the app check them.
 */
import { ConfigError, type ConfigIssue } from '../errors';
import { IssueList, withoutTarget } from '../issues';
import { sortIssues } from '../parse';
import { readYamlDocument, type YamlDocument } from '../yaml-document';
import { readMoeConfig } from './read';
import { collectMoeIssues } from './validate';
import type { MoeConfig } from './types';

export type { MoeConfig, MoeExpert, MoeGateMode } from './types';
export { MOE_GATE_MODES, MOE_TOP_LEVEL_KEYS } from './read';
export {
  matchingArchitectures,
  MOE_INPUT_MODEL_TYPES,
  MOE_OUTPUT_ARCHITECTURES,
  sharedExpertProblem,
  type MoeOutputArchitecture,
} from './validate';

export interface MoeConfigCheck {
  /** The config as far as it could be read (defaults filled in); meaningful when `issues` has no error. */
  readonly config: MoeConfig;
  readonly issues: ConfigIssue[];
}

/** Checks a mergekit-moe document against mergekit-moe's rules, without throwing. */
export function checkMoeDocument(doc: YamlDocument): MoeConfigCheck {
  const issues = new IssueList();
  const { config, expertsReadable } = readMoeConfig(doc.readable ? doc.root : null, issues);
  if (!doc.readable) return { config, issues: [...doc.issues] };
  const readErrorPaths = new Set(issues.issues.filter((i) => i.severity === 'error').map((i) => i.path));
  const checks = collectMoeIssues(config, { prompts: expertsReadable });
  issues.add(checks.filter((i) => !(i.severity === 'error' && readErrorPaths.has(i.path))));
  return { config, issues: sortIssues([...doc.issues, ...issues.issues.map((i) => doc.locate(i))]) };
}

/** Parses a mergekit-moe YAML config; throws a ConfigError listing every error (path, line, column). */
export function parseMoeConfig(yamlText: string, file?: string): { config: MoeConfig; warnings: ConfigIssue[] } {
  const { config, issues } = checkMoeDocument(readYamlDocument(yamlText));
  const warnings = issues.filter((i) => i.severity === 'warning');
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) throw new ConfigError(errors, file, warnings);
  return { config, warnings };
}

/** The mergekit-moe rules on a config object (the app's form): paths, no positions. */
export function validateMoeConfig(config: MoeConfig): ConfigIssue[] {
  return collectMoeIssues(config).map(withoutTarget);
}
