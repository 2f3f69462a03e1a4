/** A planning failure the user can act on; `yamlPath` points into the config where relevant. */
export class PlanError extends Error {
  constructor(
    message: string,
    readonly yamlPath?: string,
  ) {
    super(yamlPath ? `${yamlPath}: ${message}` : message);
    this.name = 'PlanError';
  }
}
