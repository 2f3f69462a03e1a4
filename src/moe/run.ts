import type { MoeConfig } from '../config';
import type { OutputFolder } from '../storage';
import { degenerateLayers, degenerateWarning } from './degenerate';
import { MoeCancelledError } from './errors';
import { computeRouters } from './gates';
import { renderMoeCard } from './model-card';
import { planMoe } from './plan';
import type { MoeOptions, MoeProgress, MoeReport, MoeSources } from './types';
import { writeMoeTensors } from './write';

const DEFAULT_BLOCK_BYTES = 32 * 1024 * 1024;

/**
 * Builds a mixture-of-experts model from a mergekit-moe config (docs/moe.md): plans (every check,
 * no weight read), computes the routers, streams the tensors into `output`, writes config.json,
 * the base's tokenizer files and a model card, and commits. On any error or cancellation the
 * output is aborted: nothing that looks finished is left behind.
 */
export async function runMoeMerge(
  config: MoeConfig,
  sources: MoeSources,
  output: OutputFolder,
  options: MoeOptions = {},
  onProgress?: (progress: MoeProgress) => void,
): Promise<MoeReport> {
  const seed = options.seed ?? 0;
  const blockBytes = options.blockBytes ?? DEFAULT_BLOCK_BYTES;
  try {
    const plan = await planMoe(config, sources, options);
    const routers = await computeRouters(plan, config.gate_mode, {
      seed,
      promptBatch: options.promptBatch ?? 8,
      blockBytes,
      signal: options.signal,
      onProgress: (done, total) => onProgress?.({ phase: 'gates', done, total }),
    });
    const warnings = [...plan.warnings];
    const degenerate = degenerateWarning(degenerateLayers(routers, plan.gated.length, plan.hidden), plan.layers);
    if (degenerate !== null) warnings.push(degenerate);

    await output.writeText('config.json', JSON.stringify(plan.outConfig, null, 2) + '\n');
    const bytesWritten = await writeMoeTensors(plan, routers, output, {
      seed,
      outShardSize: options.outShardSize,
      blockBytes,
      signal: options.signal,
      onTensor: (done, total, tensor, written) => onProgress?.({ phase: 'weights', done, total, tensor, bytesWritten: written }),
    });
    for (const file of plan.tokenizerFiles) {
      const source = await plan.base.folder.open(file);
      if (!source) continue;
      try {
        await output.writeBytes(file, await source.read(0, source.size));
      } finally {
        await source.close?.();
      }
    }
    if (options.writeModelCard !== false) {
      await output.writeText('README.md', renderMoeCard({ title: options.outputName ?? 'Mixture of experts', config, plan: { ...plan, warnings }, seed, configText: options.configText }));
      if (options.configText !== undefined) await output.writeText('mergekit_moe_config.yml', options.configText);
    }
    if (options.signal?.aborted) throw new MoeCancelledError();
    await output.commit();
    onProgress?.({ phase: 'done', done: plan.tensors.length, total: plan.tensors.length });
    return {
      architecture: plan.architecture.name,
      layout: plan.layout,
      experts: plan.routedExperts,
      layers: plan.layers,
      tensors: plan.tensors.length,
      bytesWritten,
      warnings,
      routers,
    };
  } catch (error) {
    await output.abort().catch(() => undefined);
    throw error;
  }
}
