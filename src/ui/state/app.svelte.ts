import type { MergeConfig } from '../../config';
import { findMethod } from '../../methods';
import type {
  CacheEntry,
  DemoModelInfo,
  EngineApi,
  MergeRequest,
  MergeResult,
  ModelSourceSpec,
  ModelSummary,
  PlanSummary,
  RunProgress,
} from '../../worker/api';
import { splitAdapterKey } from '../lib/adapter-edit';
import { addModel, modelKey, referencedModels, removeModel as removeFromConfig, setMethod } from '../lib/config-edit';
import { layerLayout, outputLayers, type LayerLayout, type OutputLayer } from '../lib/layer-map';
import { checkConfigText, editCheckedConfig, hasYamlComment, ReadOnlyConfigError, type ConfigCheck } from '../lib/config-text';
import { checkOffThread, needsOffThreadCheck, PENDING_CHECK } from '../lib/off-thread-check';
import { editMoeText, moeModels } from '../lib/moe-text';
import { moePlan } from '../lib/moe-plan';
import type { MoeConfig } from '../../config';
import type { ConnectEngine, EngineConnection } from '../lib/engine';
import { describeError, type UserError } from '../lib/errors';
// The file itself, not src/hub's index: that would pull @huggingface/hub into the page's bundle.
import { hubOrigin, hubUrlProblem } from '../../hub/hub-url';
import { DEFAULT_HUB_URL, hubRefFromKey, normalizeHubUrl, repoKey, resolveHubUrl, suggestOutputName, type RepoInput } from '../lib/hub-repo';
import type { LocalModelGroup } from '../lib/local-files';
import { finishOAuth, inFrame, isOAuthRedirect, oauthClientId, SIGN_IN_PARAM, startOAuth } from '../lib/oauth';
import * as persist from '../lib/persist';
import { recommendMethods, type Guidance, type ModelFacts } from '../lib/recommend';
import { configFromHash, configHash } from '../lib/share-url';
import { METHODS } from '../../methods';
import { AdapterState } from './adapters.svelte';
import { ExtractionState } from './extraction.svelte';

/**
 * The page's state, in one place: the YAML text (the source of truth), the models and what the
 * worker said about them, the plan, the run and the outputs. Components read it and call its
 * methods; only this class talks to the engine.
 */

export const STEPS = [
  { id: 'models', label: 'Models' },
  { id: 'method', label: 'Method' },
  { id: 'plan', label: 'Review' },
  { id: 'run', label: 'Run' },
  { id: 'result', label: 'Result' },
] as const;
export type StepId = (typeof STEPS)[number]['id'];

export type Inspection =
  | { readonly status: 'unbound' }
  | { readonly status: 'inspecting' }
  | { readonly status: 'ready'; readonly summary: ModelSummary }
  | { readonly status: 'error'; readonly error: string };

export interface ModelEntry {
  readonly key: string;
  readonly source?: ModelSourceSpec;
  readonly inspection: Inspection;
  /** Problems of a local folder found before inspecting it. */
  readonly problems: readonly string[];
  /** Still referenced by the YAML (a model the user added and the config no longer uses is not). */
  readonly inConfig: boolean;
}

export type RunState =
  | { readonly status: 'idle' }
  | { readonly status: 'running'; readonly progress?: RunProgress; readonly cancelling?: boolean }
  | { readonly status: 'done'; readonly result: MergeResult; readonly progress?: RunProgress }
  | { readonly status: 'failed'; readonly error: UserError; readonly progress?: RunProgress };

export interface Auth {
  readonly token: string;
  /** The Hub origin the token was entered for: it is sent to no other. */
  readonly hubOrigin: string;
  readonly via: 'token' | 'oauth';
  readonly username?: string;
  /** Organisations the user can push to (from the token check). */
  readonly orgs?: readonly string[];
  readonly remembered: boolean;
  readonly expiresAt?: number;
}

export interface Notice {
  readonly kind: 'info' | 'warning' | 'error';
  readonly text: string;
  /** YAML to restore with "Undo". */
  readonly undoYaml?: string;
  /** The models to bring back with "Undo" (after Clear). */
  readonly undoModels?: ModelsSnapshot;
}

/** The models of the table (Clear forgets them, its Undo restores them). */
export interface ModelsSnapshot {
  readonly added: readonly string[];
  readonly sources: Readonly<Record<string, ModelSourceSpec>>;
  readonly inspections: Readonly<Record<string, Inspection>>;
  readonly localProblems: Readonly<Record<string, readonly string[]>>;
}

const OAUTH_DRAFT_KEY = 'alloy:before-oauth';

/** The CPU backend's default thread count: every core the browser reports. */
export function defaultCpuThreads(): number {
  return Math.max(1, (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1);
}

function unique(keys: readonly string[]): string[] {
  return [...new Set(keys)];
}

export class AppState {
  constructor(private readonly connect: ConnectEngine) {}

  /** The models' LoRA adapters (`model+adapter`). */
  readonly adapters = new AdapterState(this);
  /** "Extract a LoRA" (its dialog). */
  readonly extraction = new ExtractionState(this);

  connection = $state.raw<EngineConnection | null>(null);
  connectionError = $state<string | null>(null);
  hubUrl = $state(DEFAULT_HUB_URL);
  /** The Hub URL came from `?hub=` (the settings field shows it but saving does not override it). */
  hubUrlFromQuery = $state(false);
  /**
   * A Hub URL that came with the page address (`?hub=`, also in shared links) and that the user has
   * not confirmed yet: until then no request carries a token and signing in is refused.
   */
  hubToConfirm = $state.raw<{ readonly hubUrl: string; readonly host: string; readonly instead: string } | null>(null);
  backend = $state<'auto' | 'webgpu' | 'cpu'>('auto');
  memoryBudgetMiB = $state(512);
  outShardSizeGB = $state(5);
  inputMode = $state<'auto' | 'cache' | 'stream'>('auto');
  /** The folder the output is saved into as it is written (File System Access API); null: the browser's storage. */
  outputDirectory = $state.raw<FileSystemDirectoryHandle | null>(null);
  /** Refuse a merge whose inputs or output hold NaN or Inf (the CLI's --strict). */
  refuseNonFinite = $state(false);
  /** Threads of the CPU backend: all cores unless the user chose fewer. */
  cpuThreads = $state(defaultCpuThreads());

  #yaml = $state('');
  /** The result of the last off-thread read (see off-thread-check.ts), for the text it was read from. */
  private offThread = $state.raw<{ readonly text: string; readonly check: ConfigCheck } | null>(null);
  /** The YAML text: the single source of truth. Setting it reads it (off the page's thread when it could take long). */
  get yaml(): string {
    return this.#yaml;
  }
  set yaml(text: string) {
    this.#yaml = text;
    if (needsOffThreadCheck(text) && this.offThread?.text !== text) {
      void checkOffThread(text).then((check) => {
        if (check && this.#yaml === text) this.offThread = { text, check };
      });
    }
  }
  /** The text is being read off the page's thread. */
  checking = $derived(needsOffThreadCheck(this.#yaml) && this.offThread?.text !== this.#yaml);
  check = $derived<ConfigCheck>(
    needsOffThreadCheck(this.#yaml) ? (this.offThread?.text === this.#yaml ? this.offThread.check : PENDING_CHECK) : checkConfigText(this.#yaml),
  );
  config = $derived<MergeConfig | null>(this.check.editable);
  referenced = $derived<string[]>(this.check.moe ? moeModels(this.check.moe.config) : this.config ? referencedModels(this.config) : []);
  method = $derived(findMethod(this.config?.merge_method ?? ''));
  baseKey = $derived(this.config?.base_model ? modelKey(this.config.base_model) : undefined);

  added = $state.raw<string[]>([]);
  sources = $state.raw<Record<string, ModelSourceSpec>>({});
  inspections = $state.raw<Record<string, Inspection>>({});
  localProblems = $state.raw<Record<string, readonly string[]>>({});

  step = $state<StepId>('models');
  dialog = $state<'cache' | 'settings' | 'extract' | null>(null);
  notice = $state.raw<Notice | null>(null);

  plan = $state.raw<PlanSummary | null>(null);
  planStatus = $state<'idle' | 'loading' | 'ready' | 'error'>('idle');
  planError = $state<string | null>(null);

  run = $state.raw<RunState>({ status: 'idle' });
  /** A merge that was running when the page went away (a reload): offered to resume or discard. */
  pendingMerge = $state.raw<persist.PendingMerge | null>(null);
  outputs = $state.raw<MergeResult[]>([]);
  cache = $state.raw<CacheEntry[] | null>(null);
  cacheError = $state<string | null>(null);

  outputName = $state('');
  randomSeed = $state<number | undefined>(undefined);
  allowCrimes = $state(false);

  auth = $state.raw<Auth | null>(null);
  demos = $state.raw<DemoModelInfo[]>([]);

  numLayers = (key: string): number | undefined => {
    const i = this.inspections[key];
    return i?.status === 'ready' ? i.summary.numLayers : undefined;
  };

  private planSequence = 0;
  private inspectSequence: Record<string, number> = {};

  entries = $derived<ModelEntry[]>(
    unique([...this.added, ...this.referenced]).map((key) => ({
      key,
      source: this.sources[key],
      inspection: this.inspections[key] ?? (this.sources[key] ? { status: 'inspecting' } : { status: 'unbound' }),
      problems: this.localProblems[key] ?? [],
      inConfig: this.referenced.includes(key),
    })),
  );

  /** Summaries of the models the config uses, in config order. */
  summaries = $derived<ModelSummary[]>(
    this.referenced.flatMap((key) => {
      const i = this.inspections[key];
      return i?.status === 'ready' ? [i.summary] : [];
    }),
  );

  guidance = $derived<Guidance>(recommendMethods(this.summaries.map(factsOf), METHODS));

  /** Where each output layer comes from, as far as the models' layer counts are known. */
  layout = $derived<LayerLayout>(this.config ? layerLayout(this.config, this.numLayers) : { blocks: [], totalLayers: 0, modelsSyntax: true });

  /** The x axis of gradient charts: the real output layers, or 32 assumed ones until models are read. */
  chartLayers = $derived<{ layers: OutputLayer[]; assumed: boolean }>(
    this.layout.totalLayers > 0
      ? { layers: outputLayers(this.layout), assumed: false }
      : { layers: outputLayers({ blocks: [{ sliceIndex: 0, outputStart: 0, length: 32, sources: [], problems: [] }], totalLayers: 32, modelsSyntax: true }), assumed: true },
  );

  /** The output name: the user's, else one made from the method and models that no existing output has. */
  effectiveOutputName = $derived.by(() => {
    const typed = this.outputName.trim();
    if (typed) return typed;
    const base = suggestOutputName(this.config?.merge_method ?? '', this.referenced);
    const taken = new Set(this.outputs.map((o) => o.outputName));
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
    return name;
  });

  get api(): EngineApi | null {
    return this.connection?.api ?? null;
  }

  // -------------------------------------------------------------------------------------------
  // Start-up

  async init(location: Location): Promise<void> {
    const saved = await persist.loadSettings();
    const savedHub = saved?.hubUrl && !hubUrlProblem(saved.hubUrl) ? normalizeHubUrl(saved.hubUrl) : undefined;
    const queryHub = new URLSearchParams(location.search).get('hub');
    const queryProblem = queryHub !== null ? (normalizeHubUrl(queryHub) ? hubUrlProblem(queryHub) : 'it is not an https:// address') : undefined;
    this.hubUrlFromQuery = queryHub !== null && !queryProblem;
    this.hubUrl = queryProblem ? (savedHub ?? DEFAULT_HUB_URL) : resolveHubUrl(location.search, savedHub);
    if (queryProblem) {
      this.notice = { kind: 'error', text: `The Hub address in this link (?hub=${shorten(queryHub ?? '')}) was refused: ${queryProblem} Using ${this.hubUrl} instead.` };
    } else if (this.hubUrlFromQuery && hubOrigin(this.hubUrl) !== hubOrigin(savedHub ?? DEFAULT_HUB_URL)) {
      this.hubToConfirm = { hubUrl: this.hubUrl, host: new URL(this.hubUrl).host, instead: savedHub ?? DEFAULT_HUB_URL };
    }
    if (saved?.backend) this.backend = saved.backend;
    if (saved?.memoryBudgetMiB) this.memoryBudgetMiB = saved.memoryBudgetMiB;
    if (saved?.outShardSizeGB) this.outShardSizeGB = saved.outShardSizeGB;
    if (saved?.inputMode) this.inputMode = saved.inputMode;
    if (saved?.refuseNonFinite !== undefined) this.refuseNonFinite = saved.refuseNonFinite;
    if (saved?.cpuThreads) this.cpuThreads = saved.cpuThreads;

    const redirected = isOAuthRedirect(location.search);
    try {
      const oauth = await finishOAuth(this.hubUrl);
      if (oauth) {
        this.auth = { token: oauth.accessToken, hubOrigin: hubOrigin(this.hubUrl)!, via: 'oauth', username: oauth.username, remembered: false, expiresAt: oauth.expiresAt };
        // Sign-in starts only once the Hub is confirmed (SignIn.svelte); the round trip kept its ?hub=.
        this.hubToConfirm = null;
        const draft = sessionStorage.getItem(OAUTH_DRAFT_KEY);
        sessionStorage.removeItem(OAUTH_DRAFT_KEY);
        if (draft) {
          const { yaml, step } = JSON.parse(draft) as { yaml: string; step: StepId };
          this.yaml = yaml;
          this.step = step;
        }
      } else if (redirected) {
        this.notice = { kind: 'error', text: 'Sign-in with Hugging Face could not be finished here (it was started in another tab, or this page was reloaded): sign in again.' };
      }
    } catch (error) {
      this.notice = { kind: 'error', text: `Sign-in with Hugging Face failed: ${(error as Error).message}` };
    }
    if (redirected) {
      // The one-time code and state must not stay in the address bar, the history or a shared link.
      const params = new URLSearchParams(location.search);
      for (const key of ['code', 'state']) params.delete(key);
      const query = params.toString();
      history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`);
    }
    if (!this.auth && !this.hubToConfirm) await this.loadRememberedToken();
    // Opened in its own tab from the Space page's frame to sign in: start at once.
    const signInParams = new URLSearchParams(location.search);
    if (signInParams.has(SIGN_IN_PARAM)) {
      signInParams.delete(SIGN_IN_PARAM);
      const query = signInParams.toString();
      history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`);
      if (!this.auth && !this.hubToConfirm && !inFrame() && oauthClientId()) {
        try {
          await startOAuth(this.hubUrl, this.oauthRedirectUrl(location));
          return;
        } catch (error) {
          this.notice = { kind: 'error', text: `Sign-in with Hugging Face failed: ${(error as Error).message}` };
        }
      }
    }

    if (this.yaml === '') {
      try {
        const fromLink = await configFromHash(location.hash);
        if (fromLink !== undefined) {
          this.yaml = fromLink;
          this.notice = { kind: 'info', text: 'Loaded the config from the link. Its models are looked up on the Hub.' };
        } else {
          this.yaml = (await persist.loadDraft()) ?? '';
        }
      } catch (error) {
        this.notice = { kind: 'error', text: (error as Error).message };
      }
    }

    try {
      this.connection = await this.connect();
      await this.configureEngine();
    } catch (error) {
      this.connectionError = describeError(error).message;
      return;
    }
    void this.refreshOutputs();
    this.pendingMerge = (await persist.loadPendingMerge()) ?? null;
    this.api?.listDemoModels().then(
      (demos) => (this.demos = demos),
      () => (this.demos = []),
    );
  }

  /**
   * Tells the worker the Hub and the token. The token goes along only when it was entered for this
   * Hub's origin and that Hub is not waiting for confirmation; the worker replaces (not merges) it.
   */
  private async configureEngine(): Promise<void> {
    const origin = hubOrigin(this.hubUrl);
    const auth = this.auth && !this.hubToConfirm && this.auth.hubOrigin === origin ? this.auth : null;
    await this.api?.configure({ hubUrl: this.hubUrl, ...(auth ? { accessToken: auth.token, tokenOrigin: auth.hubOrigin } : {}) });
  }

  /** The token remembered for the current Hub's origin, if any, becomes the sign-in. */
  private async loadRememberedToken(): Promise<void> {
    const origin = hubOrigin(this.hubUrl);
    const remembered = origin ? await persist.loadToken(origin) : undefined;
    this.auth = remembered
      ? { token: remembered.token, hubOrigin: origin!, via: 'token', remembered: true, ...(remembered.username ? { username: remembered.username } : {}) }
      : null;
  }

  /** The user accepts the Hub the page address named: from now on the token (if any) goes to it. */
  async confirmHub(): Promise<void> {
    if (!this.hubToConfirm) return;
    this.hubToConfirm = null;
    if (!this.auth) await this.loadRememberedToken();
    await this.configureEngine();
  }

  /** The user refuses the Hub the page address named: back to the saved (or default) Hub. */
  async rejectHub(location: Location): Promise<void> {
    const pending = this.hubToConfirm;
    if (!pending) return;
    this.hubToConfirm = null;
    this.hubUrlFromQuery = false;
    this.hubUrl = pending.instead;
    const params = new URLSearchParams(location.search);
    params.delete('hub');
    const query = params.toString();
    history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`);
    await this.loadRememberedToken();
    await this.configureEngine();
    for (const key of Object.keys(this.sources)) if (this.sources[key].kind === 'hub') void this.inspect(key);
  }

  /** Writes the YAML into the page URL and keeps it as the draft for the next visit. */
  async persistConfig(location: Location): Promise<void> {
    const hash = await configHash(this.yaml);
    if (hash !== location.hash && !(hash === '' && location.hash === '')) {
      history.replaceState(null, '', `${location.pathname}${location.search}${hash}`);
    }
    await persist.saveDraft(this.yaml);
  }

  // -------------------------------------------------------------------------------------------
  // Settings and auth

  async saveSettings(settings: {
    hubUrl: string;
    backend: AppState['backend'];
    memoryBudgetMiB: number;
    outShardSizeGB: number;
    refuseNonFinite?: boolean;
    cpuThreads?: number;
    inputMode?: AppState['inputMode'];
  }): Promise<string | undefined> {
    const hubUrl = normalizeHubUrl(settings.hubUrl);
    if (!hubUrl) return 'The Hub URL must be an http(s) address such as https://huggingface.co.';
    const problem = hubUrlProblem(hubUrl);
    if (problem) return problem;
    this.backend = settings.backend;
    this.memoryBudgetMiB = settings.memoryBudgetMiB;
    this.outShardSizeGB = settings.outShardSizeGB;
    this.refuseNonFinite = settings.refuseNonFinite ?? this.refuseNonFinite;
    if (settings.cpuThreads !== undefined) this.cpuThreads = Math.max(1, Math.floor(settings.cpuThreads));
    if (settings.inputMode) this.inputMode = settings.inputMode;
    const changed = hubUrl !== this.hubUrl;
    this.hubUrl = hubUrl;
    await persist.saveSettings({
      hubUrl,
      backend: settings.backend,
      memoryBudgetMiB: settings.memoryBudgetMiB,
      outShardSizeGB: settings.outShardSizeGB,
      refuseNonFinite: this.refuseNonFinite,
      ...(this.cpuThreads !== defaultCpuThreads() ? { cpuThreads: this.cpuThreads } : {}),
      inputMode: this.inputMode,
    });
    if (changed) {
      // Typed by the user: no confirmation needed. The token stays with the origin it was entered
      // for; a token remembered for the new origin (if any) takes its place.
      this.hubToConfirm = null;
      if (this.auth?.hubOrigin !== hubOrigin(hubUrl)) await this.loadRememberedToken();
      await this.configureEngine();
      // Summaries came from the other Hub: look the models up again.
      for (const key of Object.keys(this.sources)) if (this.sources[key].kind === 'hub') void this.inspect(key);
    }
    return undefined;
  }

  /** Checks a pasted token with the Hub (who it belongs to, whether it can write) and signs in with it. */
  async signInWithToken(token: string, remember: boolean): Promise<{ canWrite: boolean | null }> {
    const api = this.api;
    if (!api) throw new Error('The engine is not ready.');
    if (this.hubToConfirm) throw new Error(`Confirm the Hub at ${this.hubToConfirm.host} first (the banner at the top): the token is sent to no Hub you have not confirmed.`);
    const origin = hubOrigin(this.hubUrl)!;
    const who = await api.checkToken(token);
    await this.signIn({ token, hubOrigin: origin, via: 'token', username: who.name, orgs: who.orgs, remembered: remember });
    return { canWrite: who.canWrite };
  }

  async signIn(auth: Auth): Promise<void> {
    this.auth = auth;
    await persist.saveToken(
      auth.hubOrigin,
      auth.remembered ? { token: auth.token, hubUrl: this.hubUrl, ...(auth.username ? { username: auth.username } : {}) } : undefined,
    );
    await this.configureEngine();
  }

  /** Forgets the token: in the page, in the worker (explicitly, not by omission) and in storage. */
  async signOut(): Promise<void> {
    const origin = this.auth?.hubOrigin ?? hubOrigin(this.hubUrl);
    this.auth = null;
    await this.api?.forgetToken();
    if (origin) await persist.saveToken(origin, undefined);
    await this.configureEngine();
  }

  /** Where the Hub sends the user back after sign-in: this page, keeping a confirmed ?hub=. */
  oauthRedirectUrl(location: Location): string {
    const hub = this.hubUrlFromQuery ? `?hub=${encodeURIComponent(this.hubUrl)}` : '';
    return `${location.origin}${location.pathname}${hub}`;
  }

  /** Keeps the config across the OAuth round trip (the page is reloaded by the redirect). */
  rememberBeforeOAuth(): void {
    sessionStorage.setItem(OAUTH_DRAFT_KEY, JSON.stringify({ yaml: this.yaml, step: this.step }));
  }

  // -------------------------------------------------------------------------------------------
  // The config

  /** Applies a form edit to the YAML (parse → modify → configToYaml). */
  edit(change: (config: MergeConfig) => void): void {
    try {
      const before = this.yaml;
      // From the check already made (a text that needs the worker is never parsed here again).
      this.yaml = editCheckedConfig(this.check, change);
      // The form writes the config back in mergekit's layout, which cannot keep YAML comments.
      if (hasYamlComment(before) && !hasYamlComment(this.yaml)) {
        this.notice = { kind: 'warning', text: 'The form rewrote the YAML and its comments were dropped.', undoYaml: before };
      }
    } catch (error) {
      this.notice = { kind: 'error', text: error instanceof ReadOnlyConfigError ? error.message : `Could not apply the change: ${(error as Error).message}` };
    }
  }

  /** Applies an experts-editor edit to a mergekit-moe config's YAML. */
  editMoe(change: (config: MoeConfig) => void): void {
    const moe = this.check.moe;
    if (!moe) return;
    const before = this.yaml;
    this.yaml = editMoeText(moe, change);
    if (hasYamlComment(before) && !hasYamlComment(this.yaml)) {
      this.notice = { kind: 'warning', text: 'The form rewrote the YAML and its comments were dropped.', undoYaml: before };
    }
  }

  /** Replaces the whole config (upload, paste, a model's recipe), with an undo. */
  loadYaml(text: string, what: string): void {
    const previous = this.yaml;
    this.yaml = text;
    this.notice = { kind: 'info', text: `Loaded ${what}.`, ...(previous.trim() !== '' ? { undoYaml: previous } : {}) };
  }

  /**
   * Clear: empties the YAML and forgets the models of the table too (a model left behind would read
   * "not in config" and keep its demo button disabled), with an Undo that brings both back.
   */
  clearConfig(): void {
    const models: ModelsSnapshot = { added: this.added, sources: this.sources, inspections: this.inspections, localProblems: this.localProblems };
    const yaml = this.yaml;
    this.added = [];
    this.sources = {};
    this.inspections = {};
    this.localProblems = {};
    this.yaml = '';
    this.notice = { kind: 'info', text: 'Cleared the config and its models.', undoYaml: yaml, undoModels: models };
  }

  undo(): void {
    const notice = this.notice;
    this.notice = null;
    if (notice?.undoModels) {
      const { added, sources, inspections, localProblems } = notice.undoModels;
      this.added = [...added];
      this.sources = { ...sources };
      this.inspections = { ...inspections };
      this.localProblems = { ...localProblems };
      // A reading that finished while the models were cleared was dropped (inspect checks the source): read again.
      for (const [key, inspection] of Object.entries(inspections)) if (inspection.status === 'inspecting') void this.inspect(key);
    }
    if (notice?.undoYaml !== undefined) this.yaml = notice.undoYaml;
  }

  chooseMethod(name: string): void {
    this.edit((c) => setMethod(c, name, this.guidance.suggestedBase));
  }

  // -------------------------------------------------------------------------------------------
  // Models

  addHubModel(input: RepoInput): string {
    const key = repoKey(input);
    this.sources = { ...this.sources, [key]: { kind: 'hub', repo: input.repo, ...(input.revision ? { revision: input.revision } : {}) } };
    if (!this.added.includes(key)) this.added = [...this.added, key];
    this.edit((c) => addModel(c, key));
    void this.inspect(key);
    return key;
  }

  addDemoModel(name: string): void {
    this.sources = { ...this.sources, [name]: { kind: 'demo', name } };
    if (!this.added.includes(name)) this.added = [...this.added, name];
    this.edit((c) => addModel(c, name));
    void this.inspect(name);
  }

  /** Adds picked or dropped folders; `bindTo` binds one folder to a model the YAML names but that is not loaded. */
  addLocalModels(groups: readonly LocalModelGroup[], bindTo?: string): void {
    const taken = new Set([...this.added, ...this.referenced]);
    for (const group of groups) {
      let name = bindTo ?? group.name;
      if (!bindTo) for (let n = 2; taken.has(name) && this.sources[name]; n++) name = `${group.name}-${n}`;
      taken.add(name);
      this.sources = { ...this.sources, [name]: { kind: 'local', name, files: [...group.files] } };
      this.localProblems = { ...this.localProblems, [name]: group.problems };
      if (!this.added.includes(name)) this.added = [...this.added, name];
      if (!bindTo) this.edit((c) => addModel(c, name));
      if (group.problems.length === 0) void this.inspect(name);
      else this.inspections = { ...this.inspections, [name]: { status: 'error', error: group.problems.join('; ') } };
      if (bindTo) break;
    }
  }

  removeModel(key: string): void {
    this.added = this.added.filter((k) => k !== key);
    const { [key]: _source, ...sources } = this.sources;
    const { [key]: _inspection, ...inspections } = this.inspections;
    this.sources = sources;
    this.inspections = inspections;
    if (this.referenced.includes(key)) this.edit((c) => removeFromConfig(c, key));
  }

  async inspect(key: string): Promise<void> {
    const source = this.sources[key];
    const api = this.api;
    if (!source || !api) return;
    const sequence = (this.inspectSequence[key] = (this.inspectSequence[key] ?? 0) + 1);
    this.inspections = { ...this.inspections, [key]: { status: 'inspecting' } };
    let next: Inspection;
    try {
      next = { status: 'ready', summary: await api.inspectModel(source) };
    } catch (error) {
      next = { status: 'error', error: describeError(error).message };
    }
    if (this.inspectSequence[key] === sequence && this.sources[key] === source) {
      this.inspections = { ...this.inspections, [key]: next };
    }
  }

  /**
   * Binds and inspects the models the YAML names that are not loaded yet (after typing, a link or a
   * recipe): demo models by name, else Hub repos. Other names are local folders the user must pick.
   */
  bindReferencedModels(): void {
    if (!this.api) return;
    this.adapters.bindReferenced();
    const additions: Record<string, ModelSourceSpec> = {};
    for (const key of this.referenced) {
      if (this.sources[key]) continue;
      // model+adapter: the model as bound without its adapter, else by its own name.
      const plain = splitAdapterKey(key).model;
      if (plain !== key && this.sources[plain]) {
        additions[key] = this.sources[plain];
        continue;
      }
      if (plain !== key && (this.demos.some((d) => d.name === plain) || hubRefFromKey(plain))) {
        const ref = hubRefFromKey(plain);
        additions[key] = ref ? { kind: 'hub', repo: ref.repo, ...(ref.revision ? { revision: ref.revision } : {}) } : { kind: 'demo', name: plain };
        continue;
      }
      if (this.demos.some((d) => d.name === key)) {
        additions[key] = { kind: 'demo', name: key };
        continue;
      }
      const ref = hubRefFromKey(key);
      if (ref) additions[key] = { kind: 'hub', repo: ref.repo, ...(ref.revision ? { revision: ref.revision } : {}) };
    }
    if (Object.keys(additions).length === 0) return;
    this.sources = { ...this.sources, ...additions };
    for (const key of Object.keys(additions)) void this.inspect(key);
  }

  // -------------------------------------------------------------------------------------------
  // Plan and run

  /** What blocks asking for a plan, in words; undefined when a request can be built. */
  get requestProblem(): string | undefined {
    if (!this.api) return 'The engine is not ready.';
    if (this.check.moe) return this.moeProblem;
    if (this.check.empty || !this.config || this.referenced.length === 0) return 'Add models and choose a method first.';
    if (!this.check.valid) return `The config has ${this.check.errorCount} problem${this.check.errorCount === 1 ? '' : 's'}: see the YAML panel.`;
    const unbound = this.referenced.filter((k) => !this.sources[k]);
    if (unbound.length > 0) return `Pick the local folder of ${unbound.join(', ')} (Models step).`;
    const pending = this.referenced.filter((k) => this.inspections[k]?.status !== 'ready');
    if (pending.some((k) => this.inspections[k]?.status === 'error')) return 'Some models could not be read: see the Models step.';
    if (pending.length > 0) return 'Reading the models…';
    return this.adapters.problem;
  }

  /** What blocks building a mixture of experts, in words (the YAML's problems, models not bound or read, experts that do not fit). */
  private get moeProblem(): string | undefined {
    const moe = this.check.moe!;
    if (!moe.valid) return `The config has ${this.check.errorCount} problem${this.check.errorCount === 1 ? '' : 's'}: see the YAML panel.`;
    const unbound = this.referenced.filter((k) => !this.sources[k]);
    if (unbound.length > 0) return `Pick the local folder of ${unbound.join(', ')} (Models step).`;
    const pending = this.referenced.filter((k) => this.inspections[k]?.status !== 'ready');
    if (pending.some((k) => this.inspections[k]?.status === 'error')) return 'Some models could not be read: see the Models step.';
    if (pending.length > 0) return 'Reading the models…';
    const plan = moePlan(moe.config, (key) => {
      const i = this.inspections[key];
      return i?.status === 'ready' ? i.summary : undefined;
    });
    if (plan.errors.length > 0) return 'These models cannot be combined into a mixture of experts: see the Review step.';
    return undefined;
  }

  /** Whether Start merge can run now: a mixture of experts needs no plan from the worker (its Review is worked out in the page). */
  get canStartRun(): boolean {
    return this.requestProblem === undefined && (this.check.moe ? true : this.plan?.ok === true) && this.run.status !== 'running';
  }

  buildRequest(): MergeRequest | null {
    if (this.requestProblem !== undefined) return null;
    return {
      yaml: this.yaml,
      models: [...this.referenced.map((key) => ({ key, source: this.sources[key] })), ...this.adapters.bindings()],
      outShardSize: Math.round(this.outShardSizeGB * 1e9),
      ...(this.randomSeed !== undefined ? { randomSeed: this.randomSeed } : {}),
      allowCrimes: this.allowCrimes,
      backend: this.backend,
      memoryBudgetBytes: this.memoryBudgetMiB * 2 ** 20,
      threads: this.cpuThreads,
      outputName: this.effectiveOutputName,
      inputMode: this.inputMode,
      ...(this.outputDirectory ? { outputDirectory: this.outputDirectory } : {}),
      refuseNonFinite: this.refuseNonFinite,
    };
  }

  /** Whether this browser can save into a folder as the merge writes (File System Access API). */
  get canSaveToFolder(): boolean {
    return typeof (globalThis as { showDirectoryPicker?: unknown }).showDirectoryPicker === 'function';
  }

  /** Asks for an output folder (needs a click: the picker is a user gesture). */
  async chooseOutputFolder(): Promise<void> {
    const picker = (globalThis as { showDirectoryPicker?: (o?: { mode?: 'read' | 'readwrite'; id?: string }) => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
    if (!picker) return;
    try {
      this.outputDirectory = await picker({ mode: 'readwrite', id: 'alloy-output' });
    } catch (error) {
      if ((error as { name?: string }).name === 'AbortError') return; // the user closed the picker
      this.notice = { kind: 'error', text: `Could not use that folder: ${describeError(error).message}` };
      return;
    }
    await this.refreshPlan();
  }

  async clearOutputFolder(): Promise<void> {
    this.outputDirectory = null;
    await this.refreshPlan();
  }

  async refreshPlan(): Promise<void> {
    const request = this.buildRequest();
    const sequence = ++this.planSequence;
    if (!request || !this.api || this.check.moe) {
      this.plan = null;
      this.planStatus = 'idle';
      return;
    }
    this.planStatus = 'loading';
    try {
      const plan = await this.api.plan(request);
      if (sequence !== this.planSequence) return;
      this.plan = plan;
      this.planStatus = 'ready';
      this.planError = null;
    } catch (error) {
      if (sequence !== this.planSequence) return;
      this.plan = null;
      this.planStatus = 'error';
      this.planError = describeError(error).message;
    }
  }

  async startMerge(): Promise<void> {
    const request = this.buildRequest();
    if (!request) return;
    await this.runMerge(resumable(request));
  }

  /** Continues the merge the page was running when it went away, after its last completed tensor. */
  async resumeMerge(): Promise<void> {
    const pending = this.pendingMerge;
    if (!pending || !this.api || this.run.status === 'running') return;
    const { request } = pending;
    if (request.outputDirectory && !(await writePermission(request.outputDirectory))) {
      this.notice = { kind: 'error', text: `Alloy may no longer write into the folder "${shorten(request.outputDirectory.name)}": allow it to resume, or discard the merge.` };
      return;
    }
    this.yaml = request.yaml;
    this.outputName = request.outputName;
    this.randomSeed = request.randomSeed;
    this.outputDirectory = request.outputDirectory ?? null;
    this.sources = { ...this.sources, ...Object.fromEntries(request.models.map((m) => [m.key, m.source])) };
    for (const m of request.models) void this.inspect(m.key);
    await this.runMerge(request);
  }

  /** Forgets the unfinished merge and removes what it wrote. */
  async discardPendingMerge(): Promise<void> {
    const pending = this.pendingMerge;
    if (!pending) return;
    this.pendingMerge = null;
    await persist.savePendingMerge(undefined);
    try {
      await this.api?.discardUnfinishedMerge(pending.request);
    } catch (error) {
      this.notice = { kind: 'error', text: `Could not remove the unfinished merge: ${describeError(error).message}` };
    }
  }

  private async runMerge(request: MergeRequest): Promise<void> {
    const api = this.api;
    if (!api || this.run.status === 'running') return;
    this.run = { status: 'running' };
    this.step = 'run';
    // Kept until the merge ends: after a reload it is offered to resume.
    const pending = request.resumeId !== undefined && request.randomSeed !== undefined
      ? { request: request as persist.PendingMerge['request'], startedAt: new Date().toISOString() }
      : null;
    this.pendingMerge = null;
    await persist.savePendingMerge(pending ?? undefined);
    let savedTensors = -1;
    const onProgress = (progress: RunProgress) => {
      if (this.run.status === 'running') this.run = { ...this.run, progress };
      if (pending && progress.tensorsDone !== savedTensors && this.run.status === 'running') {
        savedTensors = progress.tensorsDone;
        void persist.savePendingMerge({ ...pending, tensorsDone: progress.tensorsDone, tensorsTotal: progress.tensorsTotal });
      }
    };
    try {
      const result = this.check.moe ? await api.moe(request, onProgress) : await api.merge(request, onProgress);
      this.run = { status: 'done', result, ...(this.run.status === 'running' && this.run.progress ? { progress: this.run.progress } : {}) };
      await this.refreshOutputs();
      this.step = 'result';
    } catch (error) {
      const progress = this.run.status === 'running' ? this.run.progress : undefined;
      this.run = { status: 'failed', error: describeError(error), ...(progress ? { progress } : {}) };
    } finally {
      // Ended here (done, failed or cancelled): the worker removed its partial output.
      if (pending) await persist.savePendingMerge(undefined);
    }
  }

  async cancelMerge(): Promise<void> {
    if (this.run.status !== 'running') return;
    this.run = { ...this.run, cancelling: true };
    await this.api?.cancel();
  }

  async refreshOutputs(): Promise<void> {
    try {
      this.outputs = (await this.api?.listOutputs()) ?? [];
    } catch (error) {
      this.notice = { kind: 'error', text: `Could not list the outputs: ${describeError(error).message}` };
    }
  }

  async deleteOutput(name: string): Promise<void> {
    await this.api?.deleteOutput(name);
    await this.refreshOutputs();
  }

  async refreshCache(): Promise<void> {
    try {
      this.cache = (await this.api?.listCache()) ?? [];
      this.cacheError = null;
    } catch (error) {
      this.cacheError = describeError(error).message;
    }
  }

  async deleteCached(repo: string, revision?: string): Promise<void> {
    await this.api?.deleteCached(repo, revision);
    await this.refreshCache();
  }
}

/**
 * The request with what a resume after a reload needs: an id for its partial output, and a fixed
 * random seed (the resumed plan must be the same). Merges of local files cannot be resumed (the
 * files do not survive a reload) and are left as they are.
 */
function resumable(request: MergeRequest): MergeRequest {
  if (request.models.some((m) => m.source.kind === 'local')) return request;
  const id = Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => b.toString(16).padStart(2, '0')).join('');
  return { ...request, resumeId: id, randomSeed: request.randomSeed ?? Math.floor(Math.random() * 2 ** 31) };
}

/** Asks again, where needed, for write access to a folder picked before a reload (the click on Resume is the gesture). */
async function writePermission(dir: FileSystemDirectoryHandle): Promise<boolean> {
  const handle = dir as FileSystemDirectoryHandle & {
    queryPermission?: (o: { mode: 'readwrite' }) => Promise<PermissionState>;
    requestPermission?: (o: { mode: 'readwrite' }) => Promise<PermissionState>;
  };
  try {
    if (!handle.queryPermission || (await handle.queryPermission({ mode: 'readwrite' })) === 'granted') return true;
    return (await handle.requestPermission?.({ mode: 'readwrite' })) === 'granted';
  } catch {
    return false;
  }
}

export function factsOf(summary: ModelSummary): ModelFacts {
  return {
    key: summary.key,
    architecture: summary.architecture,
    numLayers: summary.numLayers,
    ...(summary.hiddenSize !== undefined ? { hiddenSize: summary.hiddenSize } : {}),
    ...(summary.vocabSize !== undefined ? { vocabSize: summary.vocabSize } : {}),
    dtype: summary.dtype,
    ...(summary.baseModels ? { baseModels: summary.baseModels } : {}),
  };
}

function shorten(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return flat.length > 80 ? `${flat.slice(0, 77)}…` : flat;
}
