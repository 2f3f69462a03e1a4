import type { ScalarTag, Tags } from 'yaml';

/**
 * mergekit reads configs with PyYAML's `safe_load` (YAML 1.1). The `yaml` package's 1.1 schema is
 * close; these adjustments make it closer where it matters for configs:
 * - booleans are PyYAML's (yes/no/on/off/true/false in their three casings), not `y`/`n`, so a
 *   model or key called `y` stays a string;
 * - dates stay strings (a model path or revision is never meant as a timestamp).
 * Numbers such as `1e-5` are read as numbers, which PyYAML would leave as strings.
 */
const BOOL = 'tag:yaml.org,2002:bool';
const TIMESTAMP = 'tag:yaml.org,2002:timestamp';

/** The boolean `value`, read from the words `test` matches and written as `true`/`false`. */
function pyYamlBool(value: boolean, test: RegExp): ScalarTag {
  return { identify: (v) => v === value, default: true, tag: BOOL, test, resolve: () => value, stringify: () => String(value) };
}

const pyYamlTrue = pyYamlBool(true, /^(?:[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/);
const pyYamlFalse = pyYamlBool(false, /^(?:[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/);

/** Use as `customTags` together with `version: '1.1'`. */
export function pyYamlTags(tags: Tags): Tags {
  const kept = tags.filter((tag) =>
    typeof tag === 'string' ? tag !== 'bool' && tag !== 'timestamp' : tag.tag !== BOOL && tag.tag !== TIMESTAMP,
  );
  return [pyYamlTrue, pyYamlFalse, ...kept];
}
