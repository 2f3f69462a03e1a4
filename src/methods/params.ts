import type { ParamDecl } from './types';

/** Declarations shared by several methods, so each one's wording and range is written once. */
export const weightParam: ParamDecl = {
  name: 'weight',
  scope: 'model',
  type: 'number',
  required: true,
  description: "How much of this model goes into the result. Relative to the other models' weights when normalized.",
};

export const densityParam: ParamDecl = {
  name: 'density',
  scope: 'model',
  type: 'number',
  required: false,
  default: 1,
  min: 0,
  max: 1,
  description: "Fraction of this model's changes (delta from the base) that is kept; 1 keeps all.",
};

/** A global on/off parameter; `laxBoolean` where mergekit only tests it for truth (see `ParamDecl`). */
export function flag(name: string, defaultValue: boolean, description: string, options: { laxBoolean?: boolean } = {}): ParamDecl {
  const decl: ParamDecl = { name, scope: 'global', type: 'boolean', required: false, default: defaultValue ? 1 : 0, description };
  return options.laxBoolean ? { ...decl, laxBoolean: true } : decl;
}

export function isSet(value: number | undefined): value is number {
  return value !== undefined && !Number.isNaN(value);
}

/** Boolean parameters arrive as numbers (YAML true/false → 1/0, as mergekit coerces them). */
export function isTrue(value: number | undefined): boolean {
  return value !== undefined && value !== 0;
}
