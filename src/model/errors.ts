/** A model the forward pass cannot run (unsupported family or setting, missing or misshapen tensor). */
export class ForwardModelError extends Error {
  readonly model: string;
  constructor(model: string, message: string) {
    super(`Model ${model}: ${message}`);
    this.name = 'ForwardModelError';
    this.model = model;
  }
}
