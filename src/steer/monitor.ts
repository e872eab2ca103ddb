/**
 * Reading a behaviour while generating: read-only hooks that record, at each call, the projection of the
 * hidden state on a vector's unit direction (h . v/||v||) at the last real token of a sequence (the token whose
 * logits choose the next one). Written for a batch of one (scope them to a row with rowHooks).
 */
import { SteerlabError } from "../errors.js";
import type { HookBinding } from "../model/engine.js";
import type { SteeringVector } from "./vector.js";

export interface Monitor {
  hooks: HookBinding[];
  /** layer -> projection at the last real token of the latest call (NaN before the first call). */
  latest: Map<number, number>;
}

export function projectionMonitor(v: SteeringVector, layers: readonly number[]): Monitor {
  const latest = new Map<number, number>();
  const hooks = layers.map((layer): HookBinding => {
    const d = v.directions.get(layer);
    if (!d) {
      throw new SteerlabError("bad_input", `the vector has no direction for layer ${layer}`, {
        expected: [...v.directions.keys()].sort((a, b) => a - b).join(", "),
      });
    }
    let n = 0;
    for (const x of d) n += x * x;
    n = Math.sqrt(n);
    if (!(n > 0)) throw new SteerlabError("bad_input", `layer ${layer} of the vector is a zero direction`);
    latest.set(layer, Number.NaN);
    return {
      point: { layer, site: v.site },
      fn: ({ hidden, seq, dim, positions }) => {
        for (let t = seq - 1; t >= 0; t--) {
          if (positions[t]! < 0) continue;
          let p = 0;
          for (let j = 0; j < dim; j++) p += hidden[t * dim + j]! * d[j]!;
          latest.set(layer, p / n);
          return;
        }
      },
    };
  });
  return { hooks, latest };
}
