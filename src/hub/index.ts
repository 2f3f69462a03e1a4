/**
 * The Hugging Face Hub, through `@huggingface/hub` only: resolving a repo to a commit and its
 * files (sizes, LFS sha256), reading small files and byte ranges, model search, token checks,
 * creating a repo and uploading the result. Every call takes a configurable `hubUrl`.
 */
export {
  HubClient,
  isHubRepoId,
  type HubClientOptions,
  type HubFile,
  type HubIdentity,
  type HubModelHit,
  type HubRepoSnapshot,
  type ReadRangeOptions,
  type UploadProgress,
} from './hub-client';
export { explainHubError, HubError, tokenSettingsUrl, type HubCallContext, type HubErrorKind } from './errors';
export { baseModelsFromCard } from './model-card-metadata';
export { hubOrigin, hubUrlProblem, isLoopbackHost } from './hub-url';
export { DEFAULT_RATE_LIMIT_WAIT_MS, formatWait, MAX_RATE_LIMIT_WAIT_MS, parseRetryAfter } from './rate-limit';
export { expectedHash, gitBlobId, HASH_NAMES, sha256Hex, verifyHubBytes, type HubHashKind } from './integrity';
