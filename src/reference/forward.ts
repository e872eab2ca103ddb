/**
 * The reference forward pass, top to bottom:
 *
 *   ids ─► tok_embd (+ pos_embd) ─► for each block l: [resid_pre l] ─► block ─► [resid_post l] ─► final norm ─► lm_head
 *
 * Hooks at the bracketed sites (and at attn_out / mlp_out inside the block) read and may rewrite the live buffer.
 * New keys and values go into the cache; a call without a cache uses a fresh one that is dropped afterwards.
 */
import { SteerlabError } from "../errors.js";
import { archSpec } from "../model/arch/registry.js";
import type { ArchSpec } from "../model/arch/spec.js";
import { checkBatch, positionsFor } from "../model/batch.js";
import type { ModelConfig } from "../model/config.js";
import {
  type Batch,
  checkStart,
  type ForwardOptions,
  type ForwardResult,
  type HookBinding,
  type HookContext,
} from "../model/engine.js";
import { hookName, isSite, SITES, type Site } from "../model/hooks.js";
import { type RopeTable, ropeTable } from "../model/rope.js";
import { checkWeights, lmHead, type Weights } from "../model/weights.js";
import { type BlockContext, type BlockWeights, blockForward, blockWeights, norm } from "./block.js";
import { ReferenceCache } from "./cache.js";
import { linear } from "./ops.js";

/** The model as the reference forward reads it: config, spec and the tensors resolved once. */
export interface ReferenceModel {
  config: ModelConfig;
  spec: ArchSpec;
  tokEmbd: Float32Array; // [V, D]
  posEmbd: Float32Array | null; // [P, D] (learned positions)
  blocks: BlockWeights[];
  finalNorm: Float32Array; // [D]
  finalNormBias: Float32Array | null; // [D]
  head: Float32Array; // [V, D] (lm_head, or tok_embd when tied)
  rope: RopeTable | null; // [nPos, hd/2] cos/sin, grown on demand up to maxPositions
  /** GELU kernel (see BlockContext.gelu); "exact" unless reproducing llama.cpp's numerics. */
  gelu: "exact" | "ggml-f16-table";
}

export function referenceModel(
  config: ModelConfig,
  weights: Weights,
  file = "<weights>",
  gelu: ReferenceModel["gelu"] = "exact",
): ReferenceModel {
  checkWeights(config, weights, file);
  const spec = archSpec(config.arch, file);
  return {
    config,
    spec,
    tokEmbd: weights.get("tok_embd")!.data,
    posEmbd: weights.get("pos_embd")?.data ?? null,
    blocks: Array.from({ length: config.nLayers }, (_, l) => blockWeights(weights, l)),
    finalNorm: weights.get("final_norm.weight")!.data,
    finalNormBias: weights.get("final_norm.bias")?.data ?? null,
    head: lmHead(config, weights).data,
    // Not [maxPositions, hd/2] up front: a 1M-token context would cost GiBs before the first call.
    rope: spec.positional === "rope" ? ropeTable(config, Math.min(config.maxPositions, 4096)) : null,
    gelu,
  };
}

function badInput(message: string, field: string, expected: string, got: string): SteerlabError {
  return new SteerlabError("bad_input", message, { field, expected, got });
}

function checkHooks(c: ModelConfig, hooks: readonly HookBinding[]): void {
  for (const h of hooks) {
    const l = h.point.layer;
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) {
      throw badInput(
        "hook layer out of range",
        "hooks.point.layer",
        `an integer in [0, ${c.nLayers})`,
        String(l),
      );
    }
    if (!isSite(h.point.site)) {
      throw badInput("unknown hook site", "hooks.point.site", SITES.join(" | "), String(h.point.site));
    }
  }
}

export function referenceForward(m: ReferenceModel, batch: Batch, opts: ForwardOptions = {}): ForwardResult {
  const c = m.config;
  const { B, T, ids, mask } = checkBatch(batch, c.vocabSize); // ids [B*T], mask [B][T]
  const D = c.hiddenSize;
  const V = c.vocabSize;
  const logitsMode = opts.logits ?? "last";
  const lastLayer = opts.stopAfterLayer ?? c.nLayers - 1;
  if (!Number.isInteger(lastLayer) || lastLayer < 0 || lastLayer >= c.nLayers) {
    throw badInput(
      "stopAfterLayer out of range",
      "stopAfterLayer",
      `an integer in [0, ${c.nLayers})`,
      String(lastLayer),
    );
  }
  if (lastLayer < c.nLayers - 1 && (logitsMode !== "none" || opts.cache)) {
    throw badInput(
      "stopAfterLayer skips blocks that logits or a cache need",
      "stopAfterLayer",
      'logits "none" and no cache',
      `logits "${logitsMode}"${opts.cache ? " with a cache" : ""}`,
    );
  }
  const hooks = opts.hooks ?? [];
  checkHooks(c, hooks);
  const firstLayer = checkStart(opts, B * T * D, lastLayer);

  let cache: ReferenceCache;
  if (opts.cache) {
    if (!(opts.cache instanceof ReferenceCache) || opts.cache.config !== c) {
      throw new SteerlabError("bad_input", "cache was not made by this engine", {
        field: "cache",
        hint: "use engine.newCache(batch)",
      });
    }
    if (opts.cache.batch !== B)
      throw badInput(
        "cache batch size differs from the batch",
        "cache",
        `${opts.cache.batch} rows`,
        String(B),
      );
    cache = opts.cache;
  } else {
    cache = new ReferenceCache(c, B, T);
  }

  // Positions [B, T]: real tokens seen before in the row (across cached calls); -1 for padding.
  const start = cache.length;
  cache.reserve(T);
  const seen = Int32Array.from(cache.seen); // [B], advanced by positionsFor
  const positions = positionsFor(mask, T, seen);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) cache.valid[b * cache.capacity + start + t] = mask[b]![t]!;
    if (seen[b]! > c.maxPositions) {
      throw badInput(
        "sequence longer than the model's context",
        "ids",
        `at most ${c.maxPositions} positions`,
        String(seen[b]),
      );
    }
  }

  if (m.rope) {
    const need = positions.reduce((a, p) => Math.max(a, p), 0) + 1;
    if (need > m.rope.nPos) m.rope = ropeTable(c, Math.min(c.maxPositions, Math.max(need, 2 * m.rope.nPos)));
  }

  // Hooks see a copy of the positions, so nothing they do can change the rotary angles.
  const hookPositions = Int32Array.from(positions);
  const fireAt = (layer: number, site: Site, buf: Float32Array): void => {
    for (const h of hooks) {
      if (h.point.layer !== layer || h.point.site !== site) continue;
      const ctx: HookContext = {
        point: { layer, site },
        hidden: buf,
        batch: B,
        seq: T,
        dim: D,
        positions: hookPositions,
      };
      h.fn(ctx);
      if (buf.length !== B * T * D)
        throw new SteerlabError("bad_input", `hook at ${hookName(layer, site)} resized its buffer`);
    }
  };

  // x [B, T, D]: the residual stream (resumed from inputHidden when starting above block 0).
  const x = new Float32Array(B * T * D);
  if (opts.inputHidden) x.set(opts.inputHidden);
  else
    for (let r = 0; r < B * T; r++) {
      const id = Number(ids[r]!);
      x.set(m.tokEmbd.subarray(id * D, (id + 1) * D), r * D);
      if (m.posEmbd) {
        const p = Math.max(0, positions[r]!); // padding: any row, the token is masked out
        for (let i = 0; i < D; i++) x[r * D + i] = x[r * D + i]! + m.posEmbd[p * D + i]!;
      }
    }

  const ctx: BlockContext = {
    config: c,
    spec: m.spec,
    batch: B,
    seq: T,
    positions,
    rope: m.rope,
    cache,
    start,
    gelu: m.gelu,
  };
  for (let l = firstLayer; l <= lastLayer; l++) {
    fireAt(l, "resid_pre", x);
    blockForward(x, l, m.blocks[l]!, ctx, (site, buf) => fireAt(l, site, buf));
    fireAt(l, "resid_post", x);
  }

  cache.length = start + T;
  cache.seen.set(seen);

  if (logitsMode === "none") return { logits: new Float32Array(0), batch: B, seq: 0, vocab: V };
  // Rows whose logits are wanted: every token, or the last one of each row.
  const Tout = logitsMode === "all" ? T : 1;
  const h = new Float32Array(B * Tout * D); // [B, Tout, D]
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Tout; t++) {
      const src = b * T + (logitsMode === "all" ? t : T - 1);
      h.set(x.subarray(src * D, (src + 1) * D), (b * Tout + t) * D);
    }
  }
  const hn = new Float32Array(B * Tout * D); // [B, Tout, D]
  norm(m.spec, hn, h, m.finalNorm, m.finalNormBias, B * Tout, D, c.normEps);
  const logits = new Float32Array(B * Tout * V); // [B, Tout, V]
  linear(logits, hn, m.head, null, B * Tout, D, V);
  return { logits, batch: B, seq: Tout, vocab: V };
}
