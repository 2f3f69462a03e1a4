import { formatModelReference, toOutputSlices } from '../config';
import type { MergeConfig } from '../config/types';
import { chunkBytesPerElement } from '../engine';
import type { MergePlan } from '../plan';
import { dtypeSize, encodeSafetensorsHeader } from '../storage';
import type { PlanSummary } from './api';

/** What the page shows of a plan besides its problems: files, memory and the layer map. */

/** Output files with their exact sizes (safetensors headers included). */
export function outputFiles(plan: MergePlan, copySize: (model: string, file: string) => number): { name: string; size: number }[] {
  const jobs = new Map(plan.jobs.map((j) => [j.name, j]));
  const files: { name: string; size: number }[] = [];
  for (const shard of plan.shards) {
    const entries = shard.tensors.map((name) => {
      const job = jobs.get(name)!;
      return { name, dtype: job.dtype, shape: [...job.shape], byteLength: job.byteLength };
    });
    files.push({ name: shard.file, size: encodeSafetensorsHeader(entries).byteLength + shard.byteLength });
  }
  for (const [name, text] of Object.entries(plan.textFiles)) files.push({ name, size: new TextEncoder().encode(text).byteLength });
  for (const copy of plan.copyFiles) files.push({ name: copy.file, size: copySize(copy.model, copy.file) });
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Peak working memory of one chunk at the budget: what the GPU must hold at once. A chunk is sized
 * as TensorJobRunner sizes it (chunkBytesPerElement); an estimate for the page, which the GPU
 * backend may round up.
 */
export function workingMemoryBytes(plan: MergePlan, budgetBytes: number): number {
  let peak = 0;
  for (const job of plan.jobs) {
    const numel = job.shape.reduce((a, b) => a * b, 1);
    if (numel === 0) continue;
    const inputBytes = job.inputs.reduce((s, i) => s + dtypeSize(i.tensor.dtype), 0);
    const perElement = chunkBytesPerElement(inputBytes, job.inputs.length);
    const cols = job.shape.length === 0 ? 1 : job.shape[job.shape.length - 1];
    const maxElements = Math.max(1024, Math.floor(budgetBytes / perElement));
    const rows = cols === 0 ? 1 : Math.max(1, Math.floor(maxElements / cols));
    const chunkElements = Math.min(numel, cols > maxElements ? Math.min(numel, maxElements) : rows * cols);
    peak = Math.max(peak, chunkElements * perElement);
  }
  return peak;
}

/** Per output layer: the model and source layer of every input (the slice view). */
export function layerSources(config: MergeConfig, plan: MergePlan): PlanSummary['layers'] {
  const layersOf = new Map(plan.models.map((m) => [m.key, m.numLayers]));
  const slices = toOutputSlices(config, (ref) => layersOf.get(formatModelReference(ref)) ?? 0);
  const out: { outputLayer: number; sources: { model: string; layer: number }[] }[] = [];
  let outputLayer = 0;
  for (const slice of slices) {
    const count = slice.sources[0].layer_range[1] - slice.sources[0].layer_range[0];
    for (let k = 0; k < count; k++, outputLayer++) {
      out.push({
        outputLayer,
        sources: slice.sources.map((s) => ({ model: formatModelReference(s.model), layer: s.layer_range[0] + k })),
      });
    }
  }
  return out;
}

export function emptySummary(partial: Partial<PlanSummary>): PlanSummary {
  return {
    ok: false,
    issues: [],
    errors: [],
    warnings: [],
    tensorCount: 0,
    downloadBytes: 0,
    outputBytes: 0,
    outputFiles: [],
    gpuMemoryBytes: 0,
    layers: [],
    ...partial,
  };
}
