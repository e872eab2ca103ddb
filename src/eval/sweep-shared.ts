/**
 * Shared prompt prefixes in a sweep: when a chunk's prompts start with the same tokens (few-shot MCQ: every
 * question follows the same solved examples), that prefix's keys and values depend on r_e (every token is
 * steered) but not on the question. Per r_e the prefix runs once as one row, its cache is forked to every
 * question of the chunk (engine.forkCache) and only the questions' own tokens run after it.
 *
 * Ragged suffixes are left-padded inside the suffix part: padding slots in the middle of a cached row are masked
 * keys and take no position (engine.ts: a token's position counts the real tokens before it), so each row's
 * positions and attention are those of its unpadded prompt: exact, not an approximation.
 */
import type { Batch } from "../model/engine.js";
import { type Ctx, padded, type Variant } from "./sweep-forward.js";
import { rowSteeringHooks } from "./sweep-steer.js";

/** Bytes one forked cache may hold (the prefix's keys and values copied to every row of a forward). */
const FORK_BYTES = 2 ** 30;

/** Length of the longest common prefix of the rows, leaving every row at least one token of its own. */
export function commonPrefixLength(rows: readonly (readonly number[])[]): number {
  if (rows.length === 0) return 0;
  let n = Math.min(...rows.map((r) => r.length)) - 1;
  const first = rows[0]!;
  for (const r of rows) {
    let k = 0;
    while (k < n && r[k] === first[k]) k++;
    n = k;
  }
  return Math.max(0, n);
}

export interface SharedPrefix {
  /** The common prefix's tokens. */
  prefix: number[];
  /** The rest of each prompt, left-padded. ids/mask [B][S]. */
  suffix: Batch & { T: number };
  /** Most rows of one forward so that the forked cache stays under FORK_BYTES (at least one r_e). */
  maxRows: number;
}

/**
 * The shared-prefix plan for a chunk's prompts, or null when it would not save work: the engine cannot fork
 * caches, reuse or sharePrefix is off, or the prefix is too short. Cost per r_e in token-blocks (attention ignored):
 * shared = P * n + B * S * n; the other path (resume at the first steered block L) = B * T * (n - L).
 */
export function sharedPrefixPlan(
  c: Ctx,
  prompts: readonly (readonly number[])[],
  L: number,
): SharedPrefix | null {
  if (!c.reuseOk || c.opts.sharePrefix === false || !c.engine.forkCache) return null;
  const P = commonPrefixLength(prompts);
  if (P === 0) return null;
  const n = c.engine.config.nLayers;
  const B = prompts.length;
  const T = Math.max(...prompts.map((p) => p.length));
  const suffix = padded(prompts.map((p) => p.slice(P)));
  if (P * n + B * suffix.T * n >= B * T * (n - L)) return null;
  const { nKvHeads, headDim } = c.engine.config;
  const rowBytes = n * 2 * nKvHeads * headDim * 4 * (P + suffix.T);
  return { prefix: prompts[0]!.slice(0, P), suffix, maxRows: Math.max(1, Math.floor(FORK_BYTES / rowBytes)) };
}

/**
 * Last-position logits [G * B, V] of every prompt at every r_e of `group` (row k * B + i: r_e group[k],
 * prompt i), as steeredForward(..., "last") would give them: the prefix once per r_e, then the suffixes.
 */
export async function sharedForward(
  c: Ctx,
  sp: SharedPrefix,
  v: Variant,
  group: readonly number[],
): Promise<Float32Array> {
  const e = c.engine;
  const G = group.length;
  const B = sp.suffix.ids.length;
  c.opts.signal?.throwIfAborted();
  const cache = e.newCache(G);
  await e.forward(
    { ids: group.map(() => sp.prefix) },
    { cache, logits: "none", hooks: rowSteeringHooks(v.vector, v.layers, group) },
  );
  const fork = e.forkCache!(cache, B, sp.suffix.T);
  const ids = [];
  const mask = [];
  for (let k = 0; k < G; k++) {
    ids.push(...sp.suffix.ids);
    mask.push(...sp.suffix.mask!);
  }
  const rowCoeffs = group.flatMap((r) => sp.suffix.ids.map(() => r));
  c.opts.signal?.throwIfAborted();
  const out = await e.forward(
    { ids, mask },
    { cache: fork, logits: "last", hooks: rowSteeringHooks(v.vector, v.layers, rowCoeffs) },
  );
  c.stats.forwards += 2;
  c.stats.reused = true;
  c.stats.sharedPrefix = true;
  return out.logits;
}
