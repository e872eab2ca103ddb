/**
 * Validating one call's batch, the same for every engine: [B][T] ids with no ragged rows, a 0/1 mask, real
 * tokens' ids inside the vocabulary. Padding ids are never looked at and come back as 0, so an embedding lookup
 * stays in range whatever the caller padded with. Positions (engine.ts): real tokens before a token in its row,
 * counted across cached calls; -1 for padding.
 */
import { SteerlabError } from "../errors.js";
import type { Batch } from "./engine.js";

export interface CheckedBatch {
  B: number;
  T: number;
  /** [B*T] token ids. */
  ids: BigInt64Array;
  /** [B][T] 1 = real, 0 = padding. */
  mask: Uint8Array[];
}

export function checkBatch(batch: Batch, vocab: number): CheckedBatch {
  if (batch.mask && batch.mask.length !== batch.ids.length) {
    throw new SteerlabError("bad_input", "mask rows differ from id rows", {
      field: "mask",
      expected: `${batch.ids.length} rows`,
      got: String(batch.mask.length),
    });
  }
  const B = batch.ids.length;
  const T = batch.ids[0]?.length ?? 0;
  if (B === 0 || T === 0) {
    throw new SteerlabError("bad_input", "a batch needs at least one row and one token", {
      field: "ids",
      got: `[${B}, ${T}]`,
    });
  }
  const ids = new BigInt64Array(B * T);
  const mask: Uint8Array[] = [];
  for (let b = 0; b < B; b++) {
    const row = batch.ids[b]!;
    const m = batch.mask?.[b];
    if (row.length !== T || (batch.mask && m?.length !== T)) {
      throw new SteerlabError("bad_input", `batch row ${b} has a different length`, {
        field: batch.mask && m?.length !== T ? "mask" : "ids",
        expected: `${T} tokens in every row (left-pad shorter rows)`,
        got: String(m?.length !== T && batch.mask ? m?.length : row.length),
      });
    }
    const mr = new Uint8Array(T);
    for (let t = 0; t < T; t++) {
      const id = row[t]!;
      const real = m ? m[t]! : 1;
      if (real !== 0 && real !== 1) {
        throw new SteerlabError("bad_input", "mask values must be 0 or 1", {
          field: `mask[${b}][${t}]`,
          got: String(real),
        });
      }
      if (real === 1 && !(Number.isInteger(id) && id >= 0 && id < vocab)) {
        throw new SteerlabError("bad_input", `token id ${id} out of range`, {
          field: `ids[${b}][${t}]`,
          expected: `an integer in [0, ${vocab})`,
          got: String(id),
        });
      }
      mr[t] = real;
      // Padding ids are never looked at; clamp them so the embedding Gather stays in range.
      ids[b * T + t] = BigInt(real === 1 ? id : 0);
    }
    mask.push(mr);
  }
  return { B, T, ids, mask };
}

/** [B, T] positions (-1 for padding) continuing from nextPos; advances nextPos. */
export function positionsFor(mask: Uint8Array[], T: number, nextPos: Int32Array): Int32Array {
  const B = mask.length;
  const pos = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let p = nextPos[b]!;
    for (let t = 0; t < T; t++) pos[b * T + t] = mask[b]![t] ? p++ : -1;
    nextPos[b] = p;
  }
  return pos;
}
