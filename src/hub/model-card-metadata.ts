import { parse } from 'yaml';

/**
 * The `base_model` entries of a model card's YAML front matter (`README.md` on the Hub): a string
 * or a list of repo ids. Returns undefined when the card has no front matter or no base_model, so
 * callers can tell "unknown" from "none".
 */
export function baseModelsFromCard(readme: string): string[] | undefined {
  const match = /^---\r?\n([\s\S]*?)\r?\n---\s*(?:\r?\n|$)/.exec(readme);
  if (!match) return undefined;
  let front: unknown;
  try {
    front = parse(match[1]);
  } catch {
    return undefined; // a broken card is not a reason to refuse the model
  }
  if (typeof front !== 'object' || front === null) return undefined;
  const value = (front as Record<string, unknown>).base_model;
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
  const ids = list.filter((v): v is string => typeof v === 'string' && v.trim() !== '').map((v) => v.trim());
  return ids.length > 0 ? ids : undefined;
}
