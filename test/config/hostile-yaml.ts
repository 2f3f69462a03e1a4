/** Hostile YAML shared by the config and CLI tests. */

/** The classic "billion laughs": nine levels of nine aliases each, 9^9 values once expanded. */
export const BILLION_LAUGHS =
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' +
  ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']
    .map((name, i) => {
      const prev = 'abcdefghi'[i];
      return `${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    })
    .join('') +
  'merge_method: linear\n';
