/**
 * Scoping hooks to one row of a batch: the hook sees a batch of one (that row's activations and positions, as
 * views into the call's buffers), so hooks written for a single sequence (a request's steering) can share a
 * batch with other rows without touching them.
 */
import type { HookBinding, HookContext } from "./engine.js";

/** The bindings, each applied to row `row` only (as if it were a batch of one). */
export function rowHooks(bindings: readonly HookBinding[], row: number): HookBinding[] {
  return bindings.map((h) => ({
    point: h.point,
    fn: (ctx: HookContext) => {
      if (row >= ctx.batch) return;
      const n = ctx.seq * ctx.dim;
      h.fn({
        ...ctx,
        hidden: ctx.hidden.subarray(row * n, (row + 1) * n), // [1, T, D]
        positions: ctx.positions.subarray(row * ctx.seq, (row + 1) * ctx.seq), // [1, T]
        batch: 1,
      });
    },
  }));
}
