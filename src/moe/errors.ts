import { escapeMessage } from '../storage';

/**
 * A mixture-of-experts config that cannot be built from these models: raised before any weight is
 * read and before anything is written. `path` is the YAML path of the config key at fault
 * (`experts[2].source_model`), empty for the config as a whole.
 */
export class MoeConfigError extends Error {
  readonly path: string;

  constructor(path: string, message: string) {
    super(`${path ? `${path}: ` : ''}${escapeMessage(message)}`);
    this.name = 'MoeConfigError';
    this.path = path;
  }
}

/** The MoE build was cancelled (the output folder was removed). */
export class MoeCancelledError extends Error {
  constructor() {
    super('mixture-of-experts build cancelled; nothing was written');
    this.name = 'MoeCancelledError';
  }
}
