/**
 * The CPU backend on a pool of workers. Platform parts live in ./node (worker_threads) and
 * ./browser (Web Workers), imported directly so neither platform loads the other's code.
 */
export { WorkerPoolBackend, DEFAULT_POOL_CACHE_BYTES, poolCacheBytes, type WorkerPoolOptions } from './worker-pool-backend';
export type { WorkerPort, ChunkRequest, ChunkResponse, PoolRequest } from './protocol';
export { createInThreadBackend, type InThreadBackend } from './in-thread-backend';
