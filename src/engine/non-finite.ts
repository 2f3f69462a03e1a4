import { nonFiniteTotal, type NonFiniteCounts, type NonFiniteTensor } from '../storage';

/**
 * Words for the NaN/Inf a merge met: the CLI's warning, the app's notice, the model card's
 * section and the refusal under `--strict` all say the same thing the same way.
 */

/** Tensor and model names come from files: control characters escaped, length bounded. */
function printable(text: string, max = 160): string {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max - 1)}…` : escaped;
}

const number = (n: number): string => n.toLocaleString('en-US');

/** "3 NaN, 2 +Inf, 1 -Inf", leaving out the zeros. */
export function formatNonFiniteCounts(c: Readonly<NonFiniteCounts>): string {
  const parts: string[] = [];
  if (c.nan > 0) parts.push(`${number(c.nan)} NaN`);
  if (c.posInf > 0) parts.push(`${number(c.posInf)} +Inf`);
  if (c.negInf > 0) parts.push(`${number(c.negInf)} -Inf`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/** "NAME: output 4,096 NaN; input ./a 3 NaN" (the output first: it is what gets written). */
export function describeNonFiniteTensor(t: NonFiniteTensor): string {
  const output = nonFiniteTotal(t.output) > 0 ? `output ${formatNonFiniteCounts(t.output)}` : 'output finite';
  const inputs = t.inputs.map((i) => `input ${printable(i.model, 80)} ${formatNonFiniteCounts(i.counts)}`);
  return `${printable(t.tensor)}: ${[output, ...inputs].join('; ')}`;
}

/** Whole-merge totals: how many tensors, and how many NaN/Inf their outputs hold. */
export function nonFiniteHeadline(tensors: readonly NonFiniteTensor[]): string {
  const output = tensors.reduce((s, t) => s + nonFiniteTotal(t.output), 0);
  const inInputs = tensors.filter((t) => t.inputs.length > 0).length;
  const what = `NaN or Inf values in ${tensors.length} tensor${tensors.length === 1 ? '' : 's'}`;
  return `${what}: ${number(output)} in the output${inInputs > 0 ? `, ${inInputs} with NaN/Inf already in an input` : ''}`;
}

/** The headline, then one line per tensor up to `limit`, then "and N more tensors". */
export function formatNonFiniteSummary(tensors: readonly NonFiniteTensor[], limit = 10): string[] {
  const lines = [nonFiniteHeadline(tensors), ...tensors.slice(0, limit).map(describeNonFiniteTensor)];
  if (tensors.length > limit) lines.push(`and ${tensors.length - limit} more tensor${tensors.length - limit === 1 ? '' : 's'}`);
  return lines;
}

/** Tensors listed in the model card before "and N more". */
const CARD_LIMIT = 100;

/** The model card's "Non-finite values" section (Markdown), appended only when there are any. */
export function renderNonFiniteCardSection(tensors: readonly NonFiniteTensor[]): string {
  const code = (s: string) => `\`${printable(s).replace(/`/g, "'")}\``;
  const lines = [
    '',
    '## Non-finite values',
    '',
    `Alloy found ${nonFiniteHeadline(tensors)}. ` +
      'Counts are per element; an input is counted once. A model with NaN or Inf weights usually produces NaN logits.',
    '',
    ...tensors.slice(0, CARD_LIMIT).map((t) => {
      const output = nonFiniteTotal(t.output) > 0 ? `output ${formatNonFiniteCounts(t.output)}` : 'output finite';
      const inputs = t.inputs.map((i) => `input ${code(i.model)} ${formatNonFiniteCounts(i.counts)}`);
      return `* ${code(t.tensor)}: ${[output, ...inputs].join('; ')}`;
    }),
  ];
  if (tensors.length > CARD_LIMIT) lines.push(`* and ${tensors.length - CARD_LIMIT} more tensors`);
  lines.push('');
  return lines.join('\n');
}

/** A result refused because it holds NaN or Inf (`--strict`, or the app's setting). */
export class NonFiniteError extends Error {
  constructor(readonly tensor: NonFiniteTensor) {
    super(`refused a result with NaN or Inf values: ${describeNonFiniteTensor(tensor)}`);
    this.name = 'NonFiniteError';
  }
}
