/**
 * The reference forward as a backend of the forward driver (model/driver.ts), top to bottom:
 *
 *   ids ─► tok_embd (+ pos_embd) ─► for each block l: attention ─(+)─► mlp ─(+)─► ... ─► final norm ─► lm_head
 *
 * The driver does the checks, positions, hooks, residual adds and cache bookkeeping; this file only computes.
 * New keys and values go into the cache's store; a call without a cache uses a fresh store dropped afterwards.
 */
import { archSpec } from "../model/arch/registry.js";
import type { ArchSpec } from "../model/arch/spec.js";
import type { BackendCall, CallInputs, ForwardBackend } from "../model/backend.js";
import type { ModelConfig } from "../model/config.js";
import type { HookPoint } from "../model/hooks.js";
import { type RopeTable, ropeTable } from "../model/rope.js";
import { checkWeights, lmHead, W, type Weights } from "../model/weights.js";
import {
  attentionSublayer,
  type BlockContext,
  type BlockWeights,
  blockWeights,
  mlpSublayer,
  norm,
} from "./block.js";
import { ReferenceKV } from "./cache.js";
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
    tokEmbd: weights.get(W.tokEmbd)!.data,
    posEmbd: weights.get(W.posEmbd)?.data ?? null,
    blocks: Array.from({ length: config.nLayers }, (_, l) => blockWeights(weights, l)),
    finalNorm: weights.get(W.finalNorm())!.data,
    finalNormBias: weights.get(W.finalNorm("bias"))?.data ?? null,
    head: lmHead(config, weights).data,
    // Not [maxPositions, hd/2] up front: a 1M-token context would cost GiBs before the first call.
    rope: spec.positional === "rope" ? ropeTable(config, Math.min(config.maxPositions, 4096)) : null,
    gelu,
  };
}

/** The reference forward behind the driver: plain TypeScript, every hook site. */
export class ReferenceBackend implements ForwardBackend<ReferenceKV> {
  readonly kind = "reference";
  readonly hookHint = "";

  constructor(readonly model: ReferenceModel) {}

  get config(): ModelConfig {
    return this.model.config;
  }

  canHook(_point: HookPoint): boolean {
    return true;
  }

  newStore(batch: number): ReferenceKV {
    return new ReferenceKV(this.model.config, batch);
  }

  begin(inputs: CallInputs<ReferenceKV>): BackendCall {
    const m = this.model;
    const c = m.config;
    const D = c.hiddenSize;
    const { B, T, ids, mask, positions, past } = inputs;
    const store = past?.store ?? new ReferenceKV(c, B, T);
    const start = past?.length ?? 0;
    // Which slots attention may read: the cached ones (the driver's mask) and this call's.
    for (let b = 0; b < B; b++) {
      if (past) store.valid.set(past.mask[b]!, b * store.capacity);
      store.valid.set(mask[b]!, b * store.capacity + start);
    }
    if (m.rope) {
      const need = positions.reduce((a, p) => Math.max(a, p), 0) + 1;
      if (need > m.rope.nPos)
        m.rope = ropeTable(c, Math.min(c.maxPositions, Math.max(need, 2 * m.rope.nPos)));
    }
    const ctx: BlockContext = {
      config: c,
      spec: m.spec,
      batch: B,
      seq: T,
      positions,
      rope: m.rope,
      cache: store,
      start,
      gelu: m.gelu,
    };
    return {
      embed: async () => {
        const x = new Float32Array(B * T * D); // [B, T, D]
        for (let r = 0; r < B * T; r++) {
          const id = Number(ids[r]!);
          x.set(m.tokEmbd.subarray(id * D, (id + 1) * D), r * D);
          if (m.posEmbd) {
            const p = Math.max(0, positions[r]!); // padding: any row, the token is masked out
            for (let i = 0; i < D; i++) x[r * D + i] = x[r * D + i]! + m.posEmbd[p * D + i]!;
          }
        }
        return x;
      },
      attention: async (l, x) => attentionSublayer(x, l, m.blocks[l]!, ctx),
      mlp: async (l, x) => mlpSublayer(x, m.blocks[l]!, ctx),
    };
  }

  async head(rows: Float32Array, n: number): Promise<Float32Array> {
    const m = this.model;
    const c = m.config;
    const D = c.hiddenSize;
    const hn = new Float32Array(n * D); // [n, D]
    norm(m.spec, hn, rows, m.finalNorm, m.finalNormBias, n, D, c.normEps);
    const logits = new Float32Array(n * c.vocabSize); // [n, V]
    linear(logits, hn, m.head, null, n, D, c.vocabSize);
    return logits;
  }

  async dispose(): Promise<void> {}
}
