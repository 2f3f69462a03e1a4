/**
 * The contract between the page (src/ui) and the engine worker (src/worker), exposed with comlink.
 * Everything here is structured-clonable data or a comlink-proxied callback; the page never
 * touches the engine, the backends or the bytes of a model directly.
 */
import type { ConfigIssue } from '../config';
import type { DiskEstimate, InputMode, InputModeSetting } from './input-mode';
import type { NonFiniteTensor } from '../storage';

/** Where a model's files come from. */
export type ModelSourceSpec =
  /** A Hub repo (id `namespace/name`), read by HTTP range requests through the OPFS cache. */
  | { readonly kind: 'hub'; readonly repo: string; readonly revision?: string }
  /** Files the user picked or dropped (a model folder's files; paths relative to the folder). */
  | { readonly kind: 'local'; readonly name: string; readonly files: readonly File[] }
  /** One of the small demo models bundled under public/demo-models/. */
  | { readonly kind: 'demo'; readonly name: string };

/** What the page shows about a model once its config.json and safetensors headers are read. */
export interface ModelSummary {
  /** The model reference used in the YAML (`org/name`, `org/name@rev`, or the local folder name). */
  readonly key: string;
  readonly architecture: string;
  readonly modelType: string;
  readonly numLayers: number;
  readonly hiddenSize?: number;
  readonly vocabSize?: number;
  readonly parameterCount: number;
  /** The dtype most of its weights are stored in (`BF16`, `F16`, `F32`…). */
  readonly dtype: string;
  /** Bytes of safetensors weights (what a merge downloads). */
  readonly weightBytes: number;
  readonly files: readonly { readonly name: string; readonly size: number }[];
  readonly tiedEmbeddings: boolean;
  readonly hasTokenizer: boolean;
  /** The `mergekit_config.yml` of the repo, when it is itself a merge (to load its recipe). */
  readonly mergekitConfig?: string;
  /** The `base_model` entries of the repo's model card metadata, when given (the method guide's "same base?"). */
  readonly baseModels?: readonly string[];
}

/** The key a page binds the adapter written `name` after `+` by (the plan's adapterSourceKey). */
export const adapterBindingKey = (name: string): string => `lora:${name}`;

/** What the page shows about a LoRA adapter (adapter_config.json and its tensors' headers). */
export interface AdapterSummary {
  /** The adapter reference as the YAML writes it after `+` (`org/name`, `org/name@rev`, or the local folder name). */
  readonly key: string;
  /** `r` and `lora_alpha` of adapter_config.json; `ranks`: the ranks its modules have (rank_pattern). */
  readonly rank: number;
  readonly alpha: number;
  readonly rslora: boolean;
  readonly ranks: readonly number[];
  /** Modules with LoRA factors, and full tensors saved (modules_to_save). */
  readonly modules: number;
  readonly savedModules: number;
  readonly targetModules?: string;
  /** `base_model_name_or_path`: the model it was trained on. */
  readonly baseModel?: string;
  /** Bytes of adapter_model.safetensors. */
  readonly bytes: number;
}

/** Which tensors of a model a `model+lora` adapter changes (the Review step). */
export interface PlanAdapter {
  /** The model reference (`model+lora`). */
  readonly model: string;
  readonly adapter: string;
  readonly tensors: readonly (
    | { readonly name: string; readonly kind: 'lora'; readonly rank: number; readonly scale: number; readonly transposed: boolean }
    | { readonly name: string; readonly kind: 'replace' }
  )[];
}

/** One hit of a Hub model search (the model picker's search-as-you-type). */
export interface ModelSearchHit {
  readonly id: string;
  readonly downloads?: number;
  readonly likes?: number;
  readonly pipelineTag?: string;
  /** ISO date of the last change. */
  readonly lastModified?: string;
  readonly gated?: boolean;
  readonly private?: boolean;
}

/**
 * A model together with how to reach it; `key` must match the model reference in the YAML. A
 * `model+lora` adapter is bound by `lora:<the part after +>` (adapterBindingKey); its model by
 * `model+lora` or by the model's own key.
 */
export interface ModelBinding {
  readonly key: string;
  readonly source: ModelSourceSpec;
}

export interface MergeRequest {
  /** The mergekit YAML (the single source of truth; the form edits it). */
  readonly yaml: string;
  readonly models: readonly ModelBinding[];
  readonly outShardSize?: number;
  readonly randomSeed?: number;
  readonly allowCrimes?: boolean;
  /** 'auto' uses WebGPU on a hardware adapter, else the CPU backend (saying why). */
  readonly backend?: 'auto' | 'webgpu' | 'cpu';
  /** Working memory for one tensor chunk. */
  readonly memoryBudgetBytes?: number;
  /** Threads the CPU backend computes on (Web Workers); default all cores, 1: the engine worker alone. */
  readonly threads?: number;
  /** Name of the output (model card title and output folder name). */
  readonly outputName: string;
  /**
   * How Hub models are read: 'cache' downloads them whole into the browser's storage first (kept
   * for the next merge), 'stream' reads them by large HTTP ranges while merging (nothing kept),
   * 'auto' (default) streams only when the cache would not fit the browser's free space.
   */
  readonly inputMode?: InputModeSetting;
  /**
   * A folder the user picked (`showDirectoryPicker`): the output is written straight into
   * `<folder>/<outputName>/` instead of the browser's storage. Handles are structured-cloneable.
   */
  readonly outputDirectory?: FileSystemDirectoryHandle;
  /** Refuse a result with NaN or Inf in any input or output tensor: the merge fails and nothing is kept. */
  readonly refuseNonFinite?: boolean;
  /**
   * Makes the merge resumable after a reload (8–40 of `0-9a-z`, chosen by the page): its partial
   * output is kept under this id with a checkpoint after every tensor, and a merge of the same
   * plan with the same id continues after the last completed tensor. An output saved into a
   * folder (`outputDirectory`) resumes after its last completed file (Chrome writes each file to a
   * swap file that appears only when closed). Give a `randomSeed` too: a resumed plan must be the same.
   */
  readonly resumeId?: string;
  /**
   * Streamed files read out of file order are downloaded again, in order, at the end of the merge
   * to check their sha256 before the output is committed (default true). False: they are reported
   * unverified instead, and nothing is downloaded twice.
   */
  readonly verifyStreamedInputs?: boolean;
}

/** "Extract a LoRA" (docs/lora.md §2): `alloy extract-lora` in the app. */
export interface ExtractRequest {
  readonly fineTuned: ModelSourceSpec;
  readonly base: ModelSourceSpec;
  /** mergekit-extract-lora's options; left out: its defaults (rank 128, distribute scale, seed 0…). */
  readonly options: {
    readonly maxRank?: number;
    readonly distributeScale?: boolean;
    readonly embedLora?: boolean;
    readonly modulesToSave?: readonly string[];
    readonly includeRegexes?: readonly string[];
    readonly excludeRegexes?: readonly string[];
    readonly svEpsilon?: number;
    readonly skipUndecomposable?: boolean;
    readonly randomSeed?: number;
  };
  /** Name of the adapter folder among the outputs. */
  readonly outputName: string;
  /** Working memory per module (default 256 MiB, as the CLI's --memory). */
  readonly memoryBytes?: number;
}

export interface ExtractPlanSummary {
  readonly ok: boolean;
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
  /** The modules extracted as LoRAs, with the rank each gets at most. */
  readonly modules: readonly { readonly module: string; readonly shape: readonly number[]; readonly maxRank: number; readonly embedding: boolean }[];
  /** Tensors copied whole from the fine-tune (modules_to_save). */
  readonly savedTensors: readonly string[];
  readonly downloadBytes: number;
  /** adapter_model.safetensors at the planned ranks (at most). */
  readonly outputBytes: number;
}

export interface ExtractProgress {
  readonly phase: 'preparing' | 'downloading' | 'extracting' | 'done';
  readonly downloads: readonly DownloadProgress[];
  readonly modulesDone: number;
  readonly modulesTotal: number;
  /** Each module extracted so far: its rank and ‖ΔW − B·A‖_F / ‖ΔW‖_F. */
  readonly modules: readonly { readonly module: string; readonly shape: readonly number[]; readonly rank: number; readonly relativeError: number }[];
}

/** A Hub file checked against the hash the Hub lists for it. */
export interface VerifiedFile {
  /** The model key (as in the YAML). */
  readonly model: string;
  readonly file: string;
  /** `sha256` for LFS files, `git-blob` (sha1 of the git blob) for the others. */
  readonly hash: 'sha256' | 'git-blob';
}

export interface PlanSummary {
  readonly ok: boolean;
  /** Problems of the YAML (same messages as `alloy validate`). */
  readonly issues: readonly ConfigIssue[];
  /** Planning errors (missing tensors, mismatched shapes…). */
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
  readonly tensorCount: number;
  readonly downloadBytes: number;
  readonly outputBytes: number;
  readonly outputFiles: readonly { readonly name: string; readonly size: number }[];
  /** Peak GPU memory the merge needs at the chosen budget. */
  readonly gpuMemoryBytes: number;
  /** Per output layer: which model and source layer it comes from (slice editor view). */
  readonly layers: readonly { readonly outputLayer: number; readonly sources: readonly { model: string; layer: number }[] }[];
  /**
   * Integrity of the Hub files: those already read whole and verified (config.json, the shard
   * index, tokenizer files), and the weight files that are verified when downloaded (their headers,
   * read by range for this plan, are then compared with the verified file).
   */
  readonly verification?: { readonly verified: readonly VerifiedFile[]; readonly onDownload: readonly VerifiedFile[] };
  /** Disk the merge needs per input mode and output target, against the browser's free space. */
  readonly disk?: DiskEstimate;
  /** The `model+lora` adapters and the tensors each changes (absent when the config has none). */
  readonly adapters?: readonly PlanAdapter[];
}

export interface DownloadProgress {
  readonly model: string;
  readonly file: string;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly state: 'cached' | 'downloading' | 'verifying' | 'done' | 'retrying' | 'failed' | 'streaming';
  readonly message?: string;
}

export interface RunProgress {
  readonly phase: 'preparing' | 'downloading' | 'merging' | 'writing' | 'done';
  readonly downloads: readonly DownloadProgress[];
  readonly tensorsDone: number;
  readonly tensorsTotal: number;
  readonly currentTensor: string | null;
  readonly inputBytesDone: number;
  readonly inputBytesTotal: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | null;
  /** Bytes of output written so far (a mixture-of-experts build, which reads no merge inputs). */
  readonly bytesWritten?: number;
  /**
   * The backend actually used (absent until the engine has chosen it, after the downloads); why it
   * runs; a warning when it is not the one asked for.
   */
  readonly backend?: 'webgpu' | 'cpu';
  readonly backendReason?: string;
  readonly backendNotice?: string;
  /** Threads the CPU backend computes on (1 without workers); absent on WebGPU. */
  readonly threads?: number;
  /** Wall time so far spent waiting on reading inputs, on computing and on writing the output (ms). */
  readonly stageTimes?: { readonly readMs: number; readonly computeMs: number; readonly writeMs: number };
}

export interface OutputFile {
  readonly name: string;
  readonly size: number;
}

export interface MergeResult {
  readonly outputName: string;
  readonly files: readonly OutputFile[];
  readonly warnings: readonly string[];
  readonly elapsedMs: number;
  /** Every Hub file the merge read, verified against the Hub's hash (none for local and demo models). */
  readonly verified?: readonly VerifiedFile[];
  /** Streamed Hub files whose sha256 was not checked, and why (read out of file order with `verifyStreamedInputs` off, or no sha256 listed). */
  readonly unverified?: readonly (VerifiedFile & { readonly reason: string })[];
  /** How Hub inputs were read. */
  readonly inputMode?: InputMode;
  /** Where the files are when not in the browser's storage: `<picked folder>/<outputName>`. */
  readonly savedTo?: string;
  /** Tensors whose inputs or output hold NaN or Inf (absent or empty when none do). */
  readonly nonFinite?: readonly NonFiniteTensor[];
  /** Where the merge's wall time went: waiting on reading inputs, on computing, on writing (ms). */
  readonly stageTimes?: RunProgress['stageTimes'];
  /** A merge resumed after a reload: the tensors written before it, taken from its checkpoint. */
  readonly resumedAfterTensors?: number;
}

export interface CacheEntry {
  readonly repo: string;
  readonly revision: string;
  readonly file: string;
  readonly size: number;
  /** Bytes downloaded so far (equals `size` when complete; the worker always sets it). */
  readonly bytesDone?: number;
  readonly complete: boolean;
}

export interface PushRequest {
  readonly outputName: string;
  /** `namespace/name`; the namespace defaults to the token's user. */
  readonly repo: string;
  readonly private: boolean;
  readonly accessToken: string;
}

export interface PushProgress {
  readonly phase: 'creating' | 'hashing' | 'uploading' | 'committing' | 'done';
  readonly files: readonly { readonly path: string; readonly progress: number }[];
}

export interface EngineOptions {
  /** Hub base URL (default https://huggingface.co; tests and mirrors use another). */
  readonly hubUrl: string;
  /**
   * `hf_…` token for gated/private repos (reads). Pushing takes its own token in PushRequest.
   * Replaced by every `configure` (left out: no token), never kept from an earlier call.
   */
  readonly accessToken?: string;
  /** The Hub origin the token was entered for: the token is dropped when `hubUrl` is on another one. */
  readonly tokenOrigin?: string;
  /** Read Xet-backed files with the Xet protocol instead of HTTP ranges (experimental; default false). */
  readonly xet?: boolean;
  /** Absolute URL of the demo models' folder (client.ts fills it in from the page's base URL). */
  readonly demoBaseUrl?: string;
  /** Download tuning (tests use tiny blocks and short retry delays). */
  readonly download?: {
    /** Bytes per range request and resume unit; a multiple of 64 (default 32 MiB). */
    readonly blockBytes?: number;
    /** Blocks of one file fetched at once (default 4). */
    readonly concurrency?: number;
    /** Retries of a failed block before giving up (default 5). */
    readonly retries?: number;
    /** First retry delay, doubling each time (default 1000 ms). */
    readonly retryBaseDelayMs?: number;
    /** Stream mode: bytes per range request; a multiple of 64 (default 32 MiB). */
    readonly streamWindowBytes?: number;
  };
}

/** Who a token belongs to (the push form shows it). */
export interface TokenCheck {
  readonly name: string;
  readonly fullname?: string;
  /** Organisations the user can push to. */
  readonly orgs: readonly string[];
  /** false for read-only tokens; null when the Hub does not say (fine-grained or OAuth tokens). */
  readonly canWrite: boolean | null;
  readonly role?: string;
}

/** One of the bundled demo models (usable offline, no account). */
export interface DemoModelInfo {
  readonly name: string;
  readonly description: string;
  /** Bytes of all its files. */
  readonly size: number;
}

/** "Did my merge break the model?": the perplexity of texts under the inputs and the merged output. */
export interface EvaluateRequest {
  /** The merge's input models, read from the same sources the merge used. */
  readonly models: readonly ModelBinding[];
  /** The merged output: in the browser's storage, or in `<outputDirectory>/<outputName>/` when saved to a folder. */
  readonly output?: { readonly outputName: string; readonly outputDirectory?: FileSystemDirectoryHandle };
  /** A text of the user's, scored besides the bundled one. */
  readonly text?: string;
  /** Tokens of each text scored (default 512, as `alloy eval`). */
  readonly maxTokens?: number;
}

export interface EvaluateProgress {
  readonly phase: 'opening' | 'scoring' | 'done';
  /** The model and text being scored. */
  readonly model?: string;
  readonly text?: string;
  /** (model, text) pairs scored so far, of `total`. */
  readonly done: number;
  readonly total: number;
}

export interface EvaluatedModel {
  readonly name: string;
  readonly role: 'input' | 'output';
  /** Per text (in `EvaluateResult.texts` order). */
  readonly scores: readonly { readonly perplexity: number; readonly tokens: number }[];
}

export interface EvaluateResult {
  readonly texts: readonly { readonly label: string; readonly source?: string }[];
  readonly models: readonly EvaluatedModel[];
  /** Models far worse than the best other one on a text, with the plain-words explanation. */
  readonly flags: readonly { readonly text: number; readonly model: string; readonly ratio: number; readonly explanation: string }[];
  /** Per text: the models tokenised it differently, so their perplexities are not compared. */
  readonly notComparable: readonly boolean[];
  readonly maxTokens: number;
}

/** The engine worker's API (src/worker/engine-worker.ts implements it; src/ui calls it through comlink). */
export interface EngineApi {
  /** Hub base URL (tests and mirrors), an optional token for gated/private repos, download tuning. */
  configure(options: EngineOptions): Promise<void>;
  /** Sign-out: no later request carries the token given to `configure`. */
  forgetToken(): Promise<void>;
  /**
   * Checks a token with the Hub (whoami). Rejects with an actionable message: "the Hub rejected
   * this token (401): create a token with write access at …/settings/tokens".
   */
  checkToken(accessToken: string): Promise<TokenCheck>;
  /** The demo models served with the app. */
  listDemoModels(): Promise<DemoModelInfo[]>;
  /** Hub models whose id contains `query`, most downloaded first, at most `limit` (default 20). */
  searchModels(query: string, limit?: number): Promise<ModelSearchHit[]>;
  /** Reads config.json and safetensors headers only (a few KB by range requests). */
  inspectModel(source: ModelSourceSpec): Promise<ModelSummary>;
  /** Reads a PEFT adapter's adapter_config.json and safetensors header (for a model's adapter). */
  inspectAdapter(source: ModelSourceSpec): Promise<AdapterSummary>;
  plan(request: MergeRequest): Promise<PlanSummary>;
  /** Downloads (through the OPFS cache), merges and writes the output to OPFS. */
  merge(request: MergeRequest, onProgress: (progress: RunProgress) => void): Promise<MergeResult>;
  /**
   * Builds the mixture of experts of a mergekit-moe YAML (docs/moe.md §1), as `alloy moe`: Hub
   * models are downloaded into the verified cache first; the output appears only when complete
   * (cancel() stops it; nothing is kept then). `randomSeed` seeds random routers and noise (default 0).
   */
  moe(request: MergeRequest, onProgress: (progress: RunProgress) => void): Promise<MergeResult>;
  /** "Extract a LoRA": what the extraction would write, and its problems (listed, not thrown). */
  planExtraction(request: ExtractRequest): Promise<ExtractPlanSummary>;
  /** Extracts a PEFT adapter folder into the outputs (cancel() stops it; nothing is kept then). */
  extractLora(request: ExtractRequest, onProgress: (progress: ExtractProgress) => void): Promise<MergeResult>;
  cancel(): Promise<void>;
  listOutputs(): Promise<MergeResult[]>;
  /** A disk-backed File of an output (download with an object URL). */
  outputFile(outputName: string, file: string): Promise<File>;
  deleteOutput(outputName: string): Promise<void>;
  /** Whether the partial output of the resumable merge `resumeId` is still there to continue. */
  hasUnfinishedMerge(resumeId: string): Promise<boolean>;
  /** Removes the partial output of the resumable merge of this request (the page's "Discard"). */
  discardUnfinishedMerge(request: Pick<MergeRequest, 'resumeId' | 'outputName' | 'outputDirectory'>): Promise<void>;
  listCache(): Promise<CacheEntry[]>;
  deleteCached(repo: string, revision?: string): Promise<void>;
  push(request: PushRequest, onProgress: (progress: PushProgress) => void): Promise<{ readonly url: string }>;
  /** Scores the inputs and the output on the bundled text (and the user's) with the forward pass; `cancel` stops it. */
  evaluate(request: EvaluateRequest, onProgress: (progress: EvaluateProgress) => void): Promise<EvaluateResult>;
}
