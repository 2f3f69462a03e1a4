import type { Arg, GraphNode } from './protocol';

/**
 * Pure functions over a recorded chunk graph, shared by the pool (which decides what the worker
 * caches and which input bytes it needs) and the worker (which evaluates it): both must agree.
 * Node ids are positions in the node list; a node's arguments always refer to earlier nodes.
 */

export function isRef(arg: Arg): arg is { readonly v: number } {
  return typeof arg === 'object' && arg !== null && 'v' in arg;
}

export function forEachRef(args: readonly Arg[], fn: (id: number) => void): void {
  for (const arg of args) {
    if (isRef(arg)) fn(arg.v);
    else if (Array.isArray(arg)) forEachRef(arg, fn);
  }
}

/**
 * Which nodes evaluating `roots` needs (1) when the nodes in `hits` come from a cache: a cached
 * node's arguments are not needed for it. Dead nodes (recorded, never used) are never evaluated;
 * every op is pure, so skipping them changes nothing.
 */
export function neededNodes(nodes: readonly GraphNode[], roots: readonly number[], hits: ReadonlySet<number>): Uint8Array {
  const needed = new Uint8Array(nodes.length);
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (needed[id]) continue;
    needed[id] = 1;
    if (!hits.has(id)) forEachRef(nodes[id].args, (ref) => needed[ref] || stack.push(ref));
  }
  return needed;
}

const BINARY = new Set(['add', 'sub', 'mul', 'div', 'min', 'max']);

/**
 * The cache key of a node whose value depends only on the chunk's inputs, the same in every pass
 * over the tensor: a decoded input, or an elementwise op of two of them (a task vector
 * `sub(input i, input base)`). Null for every other node. Scalars are left out on purpose: an
 * expression with a scalar usually carries a per-pass threshold. Random streams and row ranks are
 * left out too: the SIMD kernels draw a stream, or decide DELLA's keep test mostly without
 * ranking, in less time than a cached copy would take to write out and read back.
 */
export function cacheKey(nodes: readonly GraphNode[], id: number): string | null {
  const node = nodes[id];
  if (node.op === 'input') return `input${node.args[0] as number}`;
  if (!BINARY.has(node.op)) return null;
  const [a, b] = node.args;
  if (!isRef(a) || !isRef(b)) return null;
  const ka = leafKey(nodes[a.v]);
  const kb = leafKey(nodes[b.v]);
  return ka !== null && kb !== null ? `${node.op}(${ka},${kb})` : null;
}

function leafKey(node: GraphNode): string | null {
  return node.op === 'input' ? `input${node.args[0] as number}` : null;
}
