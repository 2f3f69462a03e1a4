import { IssueList, describe, isMapping } from './issues';
import { warnUnknownKeys } from './model-reference';
import { childPath } from './paths';
import type { ConditionalSetting, ParameterSetting, Parameters } from './types';
import { untrustedText } from '../storage';

/**
 * Reading parameter values (docs/config.md §4) from parsed YAML: a number, a boolean (stored as
 * 1/0, as mergekit coerces it), a gradient (list of numbers; booleans count as numbers) or a list of
 * `{filter?, value}` entries. Strings are rejected (mergekit's validation forbids them).
 */

/**
 * Stand-in for a value that was reported as an error, so that later checks still see the parameter
 * as set (and do not add a misleading "missing" error). Never leaves `parseMergeConfig`.
 */
export const INVALID_SETTING = '\u0000invalid';

const CONDITIONAL_KEYS = ['filter', 'value'];

export function readParameters(value: unknown, path: string, issues: IssueList): Parameters | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isMapping(value)) {
    issues.error(path, `parameters must be a mapping of name: value; got ${describe(value)}`);
    return undefined;
  }
  const params: Parameters = {};
  for (const [name, setting] of Object.entries(value)) {
    params[name] = readSetting(setting, childPath(path, name), issues);
  }
  return params;
}

export function readSetting(value: unknown, path: string, issues: IssueList): ParameterSetting {
  const scalar = readScalar(value, path, issues);
  if (scalar !== undefined) return scalar;
  if (Array.isArray(value)) {
    if (value.length === 0) {
      issues.error(path, 'an empty list is not a value: give a number, a gradient like [0, 0.5, 1], or a list of {filter, value} entries');
      return INVALID_SETTING;
    }
    if (value.every((item) => isMapping(item))) {
      const entries: ConditionalSetting[] = [];
      let ok = true;
      value.forEach((item, i) => {
        const entry = readConditional(item as Record<string, unknown>, childPath(path, i), issues);
        if (entry) entries.push(entry);
        else ok = false;
      });
      return ok ? entries : INVALID_SETTING;
    }
    return readGradient(value, path, issues, 'a list must hold only numbers (a gradient) or only {filter, value} entries');
  }
  if (isMapping(value)) {
    if ('value' in value || 'filter' in value) {
      issues.error(
        path,
        'conditional parameters must be inside a list: write `- filter: …` / `  value: …` (a list with one entry); mergekit accepts a lone {filter, value} mapping but then fails during the merge',
      );
    } else {
      issues.error(path, 'a parameter value must be a number, a list of numbers (gradient) or a list of {filter, value} entries; got a mapping');
    }
    return INVALID_SETTING;
  }
  if (value === null || value === undefined) {
    issues.error(path, 'this parameter has no value: give a number, a gradient or a list of {filter, value} entries (or remove it)');
    return INVALID_SETTING;
  }
  issues.error(path, `unsupported parameter value: ${describe(value)}`);
  return INVALID_SETTING;
}

/**
 * A number or boolean as a number; a quoted number is read as that number with a warning (mergekit's
 * pydantic converts it too); reports other strings and non-finite numbers; undefined for anything else.
 */
function readScalar(value: unknown, path: string, issues: IssueList): number | string | undefined {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      issues.error(path, `${value} is not a usable parameter value: give a finite number`);
      return INVALID_SETTING;
    }
    return value;
  }
  if (typeof value === 'string') {
    const quoted = readQuotedNumber(value, path, issues, Number.isFinite);
    if (quoted !== undefined) return quoted;
    issues.error(
      path,
      numberFromString(value) !== undefined
        ? `${value} is not a usable parameter value: give a finite number`
        : `parameter values must be numbers, booleans, gradients or {filter, value} lists; strings such as '${untrustedText(value, 40)}' are not allowed (mergekit rejects them too)`,
    );
    return INVALID_SETTING;
  }
  return undefined;
}

const NUMBER_TEXT = /^[-+]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][-+]?\d+)?$/;
const NON_FINITE_TEXT = /^[-+]?(?:inf|infinity|nan)$/i;

/**
 * The number a string holds the way pydantic's lax float parsing reads it (`"0.5"`, `" 1e-5 "`,
 * `"1_000"`, `"inf"`), or undefined when it is not a number.
 */
export function numberFromString(text: string): number | undefined {
  const trimmed = text.trim();
  if (NON_FINITE_TEXT.test(trimmed)) return Number(trimmed.replace(/inf(inity)?/i, 'Infinity').replace(/nan/i, 'NaN'));
  if (!NUMBER_TEXT.test(trimmed)) return undefined;
  return Number(trimmed.replace(/_/g, ''));
}

/**
 * The number a quoted string holds, when `accept` takes it, with a warning that mergekit (pydantic's
 * lax mode) reads it as that number; undefined, and nothing reported, otherwise.
 */
export function readQuotedNumber(text: string, path: string, issues: IssueList, accept: (n: number) => boolean): number | undefined {
  const n = numberFromString(text);
  if (n === undefined || !accept(n)) return undefined;
  issues.warning(path, `'${untrustedText(text, 40)}' is a quoted string; mergekit reads it as the number ${n}: write ${untrustedText(text.trim(), 40)} without quotes`);
  return n;
}

function readGradient(items: unknown[], path: string, issues: IssueList, mixedMessage: string): ParameterSetting {
  const values: number[] = [];
  let ok = true;
  items.forEach((item, i) => {
    const itemPath = childPath(path, i);
    if (typeof item === 'number' || typeof item === 'boolean' || typeof item === 'string') {
      const v = readScalar(item, itemPath, issues);
      if (typeof v === 'number') values.push(v);
      else ok = false;
    } else if (Array.isArray(item)) {
      issues.error(itemPath, 'gradients cannot be nested: a gradient is a flat list of numbers');
      ok = false;
    } else {
      issues.error(itemPath, `${mixedMessage}; got ${describe(item)}`);
      ok = false;
    }
  });
  return ok ? values : INVALID_SETTING;
}

function readConditional(item: Record<string, unknown>, path: string, issues: IssueList): ConditionalSetting | undefined {
  warnUnknownKeys(item, path, CONDITIONAL_KEYS, issues, 'a {filter, value} entry');
  let ok = true;
  const filter = item.filter;
  if (filter !== undefined && filter !== null && typeof filter !== 'string') {
    issues.error(childPath(path, 'filter'), `filter must be a string (a substring of tensor names, or '*'); got ${describe(filter)}`);
    ok = false;
  }
  const valuePath = childPath(path, 'value');
  let value: ConditionalSetting['value'] | undefined;
  const raw = item.value;
  if (!('value' in item) || raw === null || raw === undefined) {
    issues.error(valuePath, 'each {filter, value} entry needs a value (a number or a gradient)');
    ok = false;
  } else if (Array.isArray(raw)) {
    if (raw.length === 0) {
      issues.error(valuePath, 'an empty list is not a value: give a number or a gradient like [0, 0.5, 1]');
      ok = false;
    } else if (raw.some((x) => isMapping(x))) {
      issues.error(valuePath, 'conditional entries cannot be nested: the value of a {filter, value} entry is a number or a gradient');
      ok = false;
    } else {
      const gradient = readGradient(raw, valuePath, issues, 'a gradient must hold only numbers');
      if (Array.isArray(gradient)) value = gradient as number[];
      else ok = false;
    }
  } else {
    const scalar = readScalar(raw, valuePath, issues);
    if (typeof scalar === 'number') value = scalar;
    else {
      if (scalar === undefined) issues.error(valuePath, `the value must be a number or a gradient; got ${describe(raw)}`);
      ok = false;
    }
  }
  if (!ok || value === undefined) return undefined;
  return typeof filter === 'string' ? { filter, value } : { value };
}
