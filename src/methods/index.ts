import { arceeFusion } from './arcee-fusion';
import { karcher } from './karcher';
import { linear } from './linear';
import { modelStock } from './model-stock';
import { multislerp } from './multislerp';
import { nearswap } from './nearswap';
import { nuslerp } from './nuslerp';
import { passthrough } from './passthrough';
import { ram, ramplusTl } from './ram';
import { sce } from './sce';
import { slerp } from './slerp';
import { taskArithmeticFamily } from './task-arithmetic-family';
import type { MergeMethod } from './types';

export type { BasePolicy, DensityCheck, MergeMethod, ParamDecl, ShapePolicy, SliceInputRule, TensorMerge } from './types';
export { slerpCoefficients } from './slerp';

/** Every method Alloy implements, in the order docs and the app list them. */
export const METHODS: readonly MergeMethod[] = [
  linear, slerp, nuslerp, multislerp, karcher, passthrough, modelStock, arceeFusion, nearswap,
  ...taskArithmeticFamily, sce, ram, ramplusTl,
];

/** Method names mergekit 0.1.4 registers (docs/methods.md §0). */
export const MERGEKIT_METHOD_NAMES: readonly string[] = [
  'linear', 'slerp', 'nuslerp', 'multislerp', 'karcher', 'passthrough', 'model_stock', 'arcee_fusion',
  'nearswap', 'task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'breadcrumbs_ties',
  'della', 'della_linear', 'sce', 'ram', 'ramplus_tl',
];

const byName = new Map(METHODS.map((m) => [m.name, m]));

/** The method called `name`, or undefined (see `MERGEKIT_METHOD_NAMES` for names not implemented yet). */
export function findMethod(name: string): MergeMethod | undefined {
  return byName.get(name);
}
