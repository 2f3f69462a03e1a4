import type { MergePlan } from '../plan';
import { formatBytes } from '../storage';

function formatParams(params: Readonly<Record<string, number>>): string {
  const entries = Object.entries(params);
  return entries.length === 0 ? '' : entries.map(([k, v]) => `${k}=${Number(v.toPrecision(6))}`).join(' ');
}

/** The human-readable plan printed by `alloy plan`. */
export function formatPlan(plan: MergePlan): string {
  const lines: string[] = [];
  lines.push(`Method: ${plan.method}`);
  lines.push('Models:');
  for (const m of plan.models) lines.push(`  ${m.key}: ${m.architecture}, ${m.numLayers} layers, ${m.files.length} file(s)`);
  lines.push(
    `Output: ${plan.jobs.length} tensors, ${formatBytes(plan.totalOutputBytes)} in ${plan.shards.length} shard(s) ` +
      `(${plan.shards.map((s) => s.file).join(', ')}); reads ${formatBytes(plan.totalInputBytes)} of weights`,
  );
  const files = [...Object.keys(plan.textFiles), ...plan.copyFiles.map((f) => `${f.file} (from ${f.model})`)];
  lines.push(`Other files: ${files.join(', ') || 'none'}`);
  if (plan.tokenizer) {
    const t = plan.tokenizer;
    const size = t.tokens !== undefined ? `, ${t.tokens} tokens, ${t.rows} embedding rows` : '';
    lines.push(`Tokenizer: ${t.source}${size}${t.chatTemplate ? `; chat template: ${t.chatTemplate}` : ''}`);
  }
  lines.push('Tensors:');
  for (const job of plan.jobs) {
    lines.push(`  ${job.name} [${job.shape.join(', ')}] ${job.dtype} ${job.method}${job.params && Object.keys(job.params).length ? ' ' + formatParams(job.params) : ''}`);
    job.inputs.forEach((input, i) => {
      const base = i === job.baseIndex ? ' (base)' : '';
      const params = formatParams(input.params);
      const aligned = input.rowMap ? ` (rows aligned to the vocabulary: ${input.rowMap.filter((r) => r >= 0).length} own)` : '';
      lines.push(`    ${input.model}${base}: ${input.tensor.name} ${input.tensor.dtype}${params ? ' ' + params : ''}${aligned}`);
    });
  }
  if (plan.warnings.length > 0) {
    lines.push('Warnings:');
    for (const w of plan.warnings) lines.push(`  - ${w}`);
  }
  return lines.join('\n') + '\n';
}
