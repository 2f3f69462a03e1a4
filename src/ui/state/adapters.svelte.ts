import type { AdapterSummary, ModelBinding, ModelSourceSpec } from '../../worker/api';
import { adapterBindingKey } from '../../worker/api';
import { setModelAdapter, splitAdapterKey, withAdapter, type AdapterRef } from '../lib/adapter-edit';
import { describeError } from '../lib/errors';
import { parseRepoInput, type RepoInput } from '../lib/hub-repo';
import type { AppState, Inspection } from './app.svelte';

export type AdapterInspection =
  | { readonly status: 'inspecting' }
  | { readonly status: 'ready'; readonly summary: AdapterSummary }
  | { readonly status: 'error'; readonly error: string };

/**
 * The LoRA adapters of the model rows (`model+adapter` in the YAML, docs/lora.md §1): where each
 * adapter's files come from (a Hub repo at a revision, or a picked folder) and what its
 * adapter_config.json says. The YAML stays the source of truth: a row's adapter is the part after
 * `+` of its references; picking or removing one rewrites them, and typing one binds it.
 */
export class AdapterState {
  /** By the adapter's name as written after `+`. */
  sources = $state.raw<Record<string, ModelSourceSpec>>({});
  inspections = $state.raw<Record<string, AdapterInspection>>({});
  private sequence: Record<string, number> = {};

  constructor(private readonly app: AppState) {}

  /** The adapter part of a model key, when it has one. */
  of(key: string): { readonly name: string; readonly ref: AdapterRef } | undefined {
    const { adapter, adapterName } = splitAdapterKey(key);
    return adapter && adapterName !== undefined ? { name: adapterName, ref: adapter } : undefined;
  }

  /** Gives the row `key` the Hub adapter `input` (`org/name[@rev]` or a Hub URL); returns a problem or undefined. */
  attachHub(key: string, text: string): string | undefined {
    const input: RepoInput | undefined = parseRepoInput(text, this.app.hubUrl);
    if (!input) return 'Enter a Hub adapter id: namespace/name, optionally @revision (or paste its Hub address).';
    const ref: AdapterRef = { path: input.repo, ...(input.revision ? { revision: input.revision } : {}) };
    this.setSource(ref, { kind: 'hub', repo: input.repo, ...(input.revision ? { revision: input.revision } : {}) });
    this.rename(key, ref);
    return undefined;
  }

  /** Gives the row `key` the adapter in a picked folder (named after the folder). */
  attachFolder(key: string, name: string, files: readonly File[]): void {
    const ref: AdapterRef = { path: name };
    this.setSource(ref, { kind: 'local', name, files: [...files] });
    if (this.of(key)?.name !== name) this.rename(key, ref);
  }

  /** Takes the adapter off the row `key` (the YAML keeps the model alone). */
  detach(key: string): void {
    this.rename(key, undefined);
  }

  /** Binds the adapters the YAML names that are not bound yet and are Hub ids (after typing or a link). */
  bindReferenced(): void {
    for (const key of this.app.referenced) {
      const adapter = this.of(key);
      if (!adapter || this.sources[adapter.name]) continue;
      const hub = parseRepoInput(adapter.name);
      if (hub) this.setSource(adapter.ref, { kind: 'hub', repo: hub.repo, ...(hub.revision ? { revision: hub.revision } : {}) });
    }
  }

  /** The bindings of the adapters the config uses (the worker reads them by `lora:<name>`). */
  bindings(): ModelBinding[] {
    const out: ModelBinding[] = [];
    for (const key of this.app.referenced) {
      const adapter = this.of(key);
      const source = adapter && this.sources[adapter.name];
      if (source && !out.some((b) => b.key === adapterBindingKey(adapter.name))) out.push({ key: adapterBindingKey(adapter.name), source });
    }
    return out;
  }

  /** What blocks a plan: an adapter named like a local folder that was not picked. */
  get problem(): string | undefined {
    const missing = this.app.referenced.map((k) => this.of(k)).filter((a) => a !== undefined && !this.sources[a.name] && !parseRepoInput(a.name));
    if (missing.length === 0) return undefined;
    return `Pick the folder of the LoRA adapter ${[...new Set(missing.map((a) => a!.name))].join(', ')} (Models step).`;
  }

  async inspect(name: string): Promise<void> {
    const source = this.sources[name];
    const api = this.app.api;
    if (!source || !api) return;
    const sequence = (this.sequence[name] = (this.sequence[name] ?? 0) + 1);
    this.inspections = { ...this.inspections, [name]: { status: 'inspecting' } };
    let next: AdapterInspection;
    try {
      next = { status: 'ready', summary: await api.inspectAdapter(source) };
    } catch (error) {
      next = { status: 'error', error: describeError(error).message };
    }
    if (this.sequence[name] === sequence && this.sources[name] === source) this.inspections = { ...this.inspections, [name]: next };
  }

  private setSource(ref: AdapterRef, source: ModelSourceSpec): void {
    const name = ref.revision !== undefined ? `${ref.path}@${ref.revision}` : ref.path;
    this.sources = { ...this.sources, [name]: source };
    void this.inspect(name);
  }

  /** Rewrites the YAML's references to `key` and carries the row's model binding to its new key. */
  private rename(key: string, adapter: AdapterRef | undefined): void {
    const next = withAdapter(key, adapter);
    if (next === key) return;
    const app = this.app;
    const source = app.sources[key];
    const inspection: Inspection | undefined = app.inspections[key];
    if (source) app.sources = { ...app.sources, [next]: source };
    if (inspection) app.inspections = { ...app.inspections, [next]: inspection };
    if (app.added.includes(key)) app.added = app.added.map((k) => (k === key ? next : k));
    app.edit((c) => void setModelAdapter(c, key, adapter));
  }
}
