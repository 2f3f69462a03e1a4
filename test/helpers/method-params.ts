/**
 * Global parameters that every-method test matrices give (required ones, and values that make a
 * method do something interesting), by method name.
 */
export const METHOD_GLOBAL_PARAMS: Readonly<Record<string, Record<string, number>>> = {
  slerp: { t: 0.4 },
  nearswap: { t: 0.002 },
  sce: { select_topk: 0.5 },
  ram: { epsilon: 0.003 },
  ramplus_tl: { r: 0.3, alpha: 0.5, epsilon: 0.003 },
  ties: { normalize: 1 },
  della: { normalize: 1 },
  task_arithmetic: { lambda: 0.8 },
  karcher: { max_iter: 10, tol: 1e-5 },
};
