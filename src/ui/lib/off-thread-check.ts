import type { ConfigIssue } from '../../config';
import { checkConfigText, type ConfigCheck } from './config-text';

/**
 * YAML that could take long to read (aliases and anchors, which can expand exponentially, or a big
 * text) is read in a small worker with a time limit, so that a hostile shared link or paste cannot
 * freeze the page. Plain small texts are read on the page directly (as fast as a keystroke).
 */

/** How long a config may take to read before the worker is stopped and the text refused. */
export const CHECK_TIMEOUT_MS = 5000;
/** Texts longer than this are read off the page's thread even without aliases. */
export const SYNC_CHECK_MAX_CHARS = 16 * 1024;
/** An anchor (`&a`) or an alias (`*a`) where YAML allows one (also `<<: *a`). False positives only cost a worker round trip. */
const ANCHOR_OR_ALIAS = /(^|[\s[{,:-])[&*][^\s,[\]{}]/m;

/** More flow brackets than this (deep `[[[[…` nesting) also go to the worker. */
const MAX_SYNC_BRACKETS = 512;

export function needsOffThreadCheck(text: string): boolean {
  if (text.length > SYNC_CHECK_MAX_CHARS || ANCHOR_OR_ALIAS.test(text)) return true;
  let brackets = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c === 0x5b || c === 0x7b) && ++brackets > MAX_SYNC_BRACKETS) return true;
  }
  return false;
}

/** The check shown while the worker reads the text: nothing to edit yet, no issue yet. */
export const PENDING_CHECK: ConfigCheck = { valid: null, editable: null, issues: [], errorCount: 0, empty: false };

function refused(message: string): ConfigCheck {
  const issue: ConfigIssue = { path: '', message, severity: 'error', line: 1, column: 1 };
  return { valid: null, editable: null, issues: [issue], errorCount: 1, empty: false };
}

let worker: Worker | null = null;
let current: { id: number; settle: (check: ConfigCheck | undefined) => void } | null = null;
let nextId = 1;

function stopWorker(): void {
  worker?.terminate();
  worker = null;
}

/**
 * Reads the text in the worker. Resolves with its check, with a refusal when it takes longer than
 * `timeoutMs` (the worker is stopped), or with undefined when a newer text superseded it.
 */
export function checkOffThread(text: string, timeoutMs = CHECK_TIMEOUT_MS): Promise<ConfigCheck | undefined> {
  if (current) {
    // Only the newest text matters, and the worker may be stuck in the older one: start afresh.
    current.settle(undefined);
    current = null;
    stopWorker();
  }
  if (typeof Worker === 'undefined') return Promise.resolve(checkConfigText(text));
  const id = nextId++;
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (check: ConfigCheck | undefined): void => {
      clearTimeout(timer);
      if (current?.id === id) current = null;
      resolve(check);
    };
    current = { id, settle };
    try {
      worker ??= new Worker(new URL('./config-check-worker.ts', import.meta.url), { type: 'module', name: 'alloy-config-check' });
    } catch (error) {
      settle(refused(`the config could not be read: the checking worker did not start (${(error as Error).message})`));
      return;
    }
    const own = worker;
    timer = setTimeout(() => {
      stopWorker();
      settle(
        refused(
          `reading this YAML took longer than ${timeoutMs / 1000} s, so it was stopped (the page stays usable): it probably expands ` +
            'aliases (*name) into a huge document or nests very deeply. Write the values out instead of repeating aliases.',
        ),
      );
    }, timeoutMs);
    own.onmessage = (event: MessageEvent<{ id: number; check: ConfigCheck }>) => {
      if (event.data.id === id) settle(event.data.check);
    };
    own.onerror = (event) => {
      event.preventDefault();
      if (worker === own) stopWorker();
      settle(refused(`the config could not be read: ${event.message || 'the checking worker failed'}`));
    };
    own.postMessage({ id, text });
  });
}
