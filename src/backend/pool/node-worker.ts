/**
 * Entry of a CPU pool worker under Node (worker_threads); bundled as pool-worker.js next to the
 * CLI (vite.cli.config.ts) and the benchmark.
 */
import { parentPort } from 'node:worker_threads';
import { readFileRange, readFileRangeInto } from '../../storage/node-file-range';
import { ChunkServer } from './chunk-server';
import { createInThreadBackend } from './in-thread-backend';
import type { PoolRequest } from './protocol';
import { TimedFileReads } from './timed-file-reads';

const port = parentPort;
if (!port) throw new Error('pool-worker.js is a worker_threads entry, not a program to run');
// Inputs come as ranges of the engine's open files (worker_threads share its descriptors): read
// synchronously, straight into the kernels' memory.
const files = new TimedFileReads({ read: readFileRange }, { readInto: readFileRangeInto });
const server = new ChunkServer(await createInThreadBackend(files.readInto), files);
port.on('message', (request: PoolRequest) => server.receive(request, (response, transfer) => port.postMessage(response, transfer)));
