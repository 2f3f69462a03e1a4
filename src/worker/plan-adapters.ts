import type { MergePlan } from '../plan';
import type { PlanAdapter } from './api';

/** The Review step's view of the plan's `model+lora` adapters: per model, the tensors each changes and how. */
export function planAdapters(plan: MergePlan): { adapters?: PlanAdapter[] } {
  const byModel = new Map<string, { adapter: string; tensors: Map<string, PlanAdapter['tensors'][number]> }>();
  for (const job of plan.jobs) {
    for (const input of job.inputs) {
      const a = input.adapter;
      if (!a) continue;
      let entry = byModel.get(input.model);
      if (!entry) byModel.set(input.model, (entry = { adapter: a.adapter, tensors: new Map() }));
      // A tensor read by several output tensors (slices) is listed once, by its own name.
      const name = a.kind === 'replace' ? job.name : input.tensor.name;
      if (entry.tensors.has(name)) continue;
      entry.tensors.set(name, a.kind === 'lora' ? { name, kind: 'lora', rank: a.rank, scale: a.scale, transposed: a.transposed } : { name, kind: 'replace' });
    }
  }
  if (byModel.size === 0) return {};
  return { adapters: [...byModel].map(([model, e]) => ({ model, adapter: e.adapter, tensors: [...e.tensors.values()] })) };
}
