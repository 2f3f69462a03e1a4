import { createStore, del, get, set, type UseStore } from 'idb-keyval';

/**
 * Small state kept in IndexedDB (idb-keyval): settings, the last config (a draft restored on the
 * next visit), and the Hub token only when the user ticked "remember". Every call fails soft:
 * private modes and blocked storage must not break the page.
 */

let store: UseStore | undefined;
function db(): UseStore {
  store ??= createStore('alloy', 'state');
  return store;
}

export interface SavedSettings {
  readonly hubUrl?: string;
  readonly backend?: 'auto' | 'webgpu' | 'cpu';
  readonly memoryBudgetMiB?: number;
  readonly outShardSizeGB?: number;
  /** Threads of the CPU backend; absent: all cores. */
  readonly cpuThreads?: number;
}

async function read<T>(key: string): Promise<T | undefined> {
  try {
    return await get<T>(key, db());
  } catch {
    return undefined;
  }
}

async function write(key: string, value: unknown): Promise<void> {
  try {
    if (value === undefined) await del(key, db());
    else await set(key, value, db());
  } catch {
    // Storage unavailable (private window, blocked): the page works without it.
  }
}

export const loadSettings = () => read<SavedSettings>('settings');
export const saveSettings = (settings: SavedSettings) => write('settings', settings);
export const loadDraft = () => read<string>('draft');
export const saveDraft = (yaml: string) => write('draft', yaml);

export interface RememberedToken {
  readonly token: string;
  readonly username?: string;
  readonly hubUrl: string;
}
export const loadToken = () => read<RememberedToken>('hf-token');
export const saveToken = (token: RememberedToken | undefined) => write('hf-token', token);
