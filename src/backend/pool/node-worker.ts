/**
 * Entry of a CPU pool worker under Node (worker_threads); bundled as pool-worker.js next to the
 * CLI (vite.cli.config.ts) and the benchmark.
 */
import { parentPort } from 'node:worker_threads';
import { ChunkServer } from './chunk-server';
import { createInThreadBackend } from './in-thread-backend';
import type { ChunkRequest } from './protocol';

const port = parentPort;
if (!port) throw new Error('pool-worker.js is a worker_threads entry, not a program to run');
const server = new ChunkServer(await createInThreadBackend());
port.on('message', (request: ChunkRequest) => server.receive(request, (response, transfer) => port.postMessage(response, transfer)));
