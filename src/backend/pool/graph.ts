import { isNaNBits, type Arg, type GraphNode, type OpName } from './protocol';

/**
 * Pure functions over a recorded chunk graph, shared by the pool (which decides what the worker
 * caches and which input bytes it needs) and the worker (which evaluates it): both must agree.
 * Node ids are positions in the node list; a node's arguments always refer to earlier nodes.
 */

export function isRef(arg: Arg): arg is { readonly v: number } {
  return typeof arg === 'object' && arg !== null && 'v' in arg;
}

function forEachRef(args: readonly Arg[], fn: (id: number) => void): void {
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

/** Elementwise ops and row ranks: what a mask's value may be computed through (maskKeys). */
const MASK_PARTS = new Set<OpName>(['add', 'sub', 'mul', 'div', 'min', 'max', 'neg', 'abs', 'sign', 'sqrt', 'gt', 'ge', 'eq', 'rowRanks']);
const COMPARISONS = new Set<OpName>(['gt', 'ge', 'eq']);

/**
 * The cache keys of the graph's comparisons (0/1 masks) that depend on the chunk's inputs, random
 * streams and scalars alone, and on a random stream or row ranks — DARE's keep test
 * `density > uniform` and DELLA's `ranks → probability > uniform`: values that cost far more to
 * draw or rank again than to keep, which a worker keeps as one bit per element. A key spells the
 * whole expression, scalars exactly, so that it names the same vector in every pass over a chunk.
 * Null for every other node.
 */
export function maskKeys(nodes: readonly GraphNode[]): (string | null)[] {
  const values: (string | null)[] = new Array(nodes.length).fill(null);
  /** 1 where a node's value depends on a random stream or row ranks. */
  const costly = new Uint8Array(nodes.length);
  const argKey = (arg: Arg): string | null => {
    if (typeof arg === 'number') return Object.is(arg, -0) ? '-0' : String(arg);
    if (isNaNBits(arg)) return `nan${Array.from(new Uint32Array(arg.nan.buffer, arg.nan.byteOffset, 2)).join(':')}`;
    return isRef(arg) ? values[arg.v] : null;
  };
  nodes.forEach((node, id) => {
    if (node.op === 'input' || node.op === 'random') {
      values[id] = `${node.op}${node.args[0] as number}`;
      costly[id] = node.op === 'random' ? 1 : 0;
    } else if (MASK_PARTS.has(node.op)) {
      const parts = node.args.map(argKey);
      if (parts.includes(null)) return;
      values[id] = `${node.op}(${parts.join(',')})`;
      costly[id] = node.op === 'rowRanks' || node.args.some((a) => isRef(a) && costly[a.v] === 1) ? 1 : 0;
    }
  });
  return nodes.map((node, id) => (COMPARISONS.has(node.op) && costly[id] ? `mask:${values[id]}` : null));
}
