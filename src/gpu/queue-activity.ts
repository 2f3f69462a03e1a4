/**
 * How long the GPU queue had work: from a submission made while the queue was idle until every
 * submission so far was done (`onSubmittedWorkDone`). Divided by wall time it tells whether a merge
 * keeps the GPU busy or makes it wait for the host (reads, readbacks, writes).
 */
export class QueueActivity {
  private pending = 0;
  private busySince = 0;
  private busy = 0;

  constructor(private readonly queue: GPUQueue) {}

  /** Call right after each `queue.submit`. */
  submitted(): void {
    if (this.pending++ === 0) this.busySince = performance.now();
    this.queue.onSubmittedWorkDone().then(
      () => this.done(),
      () => this.done(),
    );
  }

  /** Milliseconds the queue has had work so far (an open busy period counts up to now). */
  get busyMs(): number {
    return this.busy + (this.pending > 0 ? performance.now() - this.busySince : 0);
  }

  private done(): void {
    if (--this.pending === 0) this.busy += performance.now() - this.busySince;
  }
}
