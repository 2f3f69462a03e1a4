/// <reference lib="webworker" />
/**
 * Reads a YAML config off the page's thread (see off-thread-check.ts): a hostile text (an alias
 * bomb from a shared link) can take this worker's time, never the page's, and the page stops the
 * worker when it takes too long.
 */
import { checkConfigText } from './config-text';

declare const self: DedicatedWorkerGlobalScope;

self.onmessage = (event: MessageEvent<{ readonly id: number; readonly text: string }>) => {
  const { id, text } = event.data;
  self.postMessage({ id, check: checkConfigText(text) });
};
