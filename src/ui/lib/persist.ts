import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import type { MergeRequest } from '../../worker/api';

/**
 * Small state kept in IndexedDB (idb-keyval): settings, the last config (a draft restored on the
 * next visit), the merge running when the page went away (offered to resume), and the Hub token
 * only when the user ticked "remember". Every call fails soft:
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
  /** How Hub models are read: cached whole first, streamed, or chosen by free space. */
  readonly inputMode?: 'auto' | 'cache' | 'stream';
  readonly refuseNonFinite?: boolean;
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

/**
 * A merge that was running when the page went away (a reload, a closed tab): its request, whose
 * `resumeId` names the partial output the worker kept. Saved when a merge starts, removed when
 * it ends; one found at start-up is offered to resume. Only merges of Hub and demo models into
 * the browser's storage are kept (local files and a picked folder do not survive a reload).
 */
export interface PendingMerge {
  readonly request: MergeRequest & { readonly resumeId: string; readonly randomSeed: number };
  readonly startedAt: string;
  /** Tensors written at the last progress the page saw (a hint for the notice; the worker's checkpoint decides). */
  readonly tensorsDone?: number;
  readonly tensorsTotal?: number;
}

export const loadPendingMerge = () => read<PendingMerge>('pending-merge');
export const savePendingMerge = (pending: PendingMerge | undefined) => write('pending-merge', pending);

export interface RememberedToken {
  readonly token: string;
  readonly username?: string;
  readonly hubUrl: string;
}

/**
 * Remembered tokens are kept per Hub origin: a token goes back only to the origin it was entered
 * for, never to a Hub URL changed later in Settings or given by a link.
 */
const TOKENS_KEY = 'hf-tokens';
/** Before tokens were kept per origin: one token, with the Hub URL it was entered for. */
const LEGACY_TOKEN_KEY = 'hf-token';

type TokensByOrigin = Record<string, RememberedToken>;

function originOf(hubUrl: string): string | undefined {
  try {
    return new URL(hubUrl).origin;
  } catch {
    return undefined;
  }
}

/** The token remembered for this Hub origin. */
export async function loadToken(origin: string): Promise<RememberedToken | undefined> {
  const tokens = (await read<TokensByOrigin>(TOKENS_KEY)) ?? {};
  if (Object.hasOwn(tokens, origin)) return tokens[origin];
  const legacy = await read<RememberedToken>(LEGACY_TOKEN_KEY);
  return legacy && originOf(legacy.hubUrl) === origin ? legacy : undefined;
}

/** Remembers (or, with undefined, forgets) the token of one Hub origin; other origins' are kept. */
export async function saveToken(origin: string, token: RememberedToken | undefined): Promise<void> {
  const tokens = { ...((await read<TokensByOrigin>(TOKENS_KEY)) ?? {}) };
  if (token === undefined) delete tokens[origin];
  else tokens[origin] = token;
  await write(TOKENS_KEY, Object.keys(tokens).length > 0 ? tokens : undefined);
  // The single token of older versions is dropped either way: from now on it lives under its origin.
  const legacy = await read<RememberedToken>(LEGACY_TOKEN_KEY);
  if (legacy) {
    const legacyOrigin = originOf(legacy.hubUrl);
    if (legacyOrigin !== origin && legacyOrigin !== undefined && !Object.hasOwn(tokens, legacyOrigin)) {
      await write(TOKENS_KEY, { ...tokens, [legacyOrigin]: legacy });
    }
    await write(LEGACY_TOKEN_KEY, undefined);
  }
}
