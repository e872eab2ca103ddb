/**
 * steerlab's ggml graphs (ggml-graphs.ts) as a backend of the forward driver (model/driver.ts). Every hook site
 * is served, and no unit is fixed at build time: a call runs each stretch of blocks no hook of it needs to see
 * inside as one graph (BackendCall.span), a block with attn_out / mlp_out hooks site by site.
 *
 *   embed ─► span(a..b) ─► [hook] ─► span(b+1..c) ─► ... ─► head(rows)
 * Per call, the positions and the attention mask are built once and fed to every graph. The cache's store
 * (ggml-kv.ts) is written and read inside the graphs; an uncached call uses a scratch store of its own size.
 */

import { archSpec } from "../../model/arch/registry.js";
import type { ArchSpec } from "../../model/arch/spec.js";
import type { BackendCall, CallInputs, ForwardBackend } from "../../model/backend.js";
import type { ModelConfig } from "../../model/config.js";
import { disposedError } from "../../model/driver.js";
import { additiveMask } from "../call-inputs.js";
import { GGML_TYPE, type GgmlBackend as Ggml } from "./addon.js";
import { attnPart, Build, blockPart, type CallIO, embedPart, headPart, mlpPart } from "./ggml-graphs.js";
import { type CacheType, GgmlKV } from "./ggml-kv.js";
import type { GgmlWeights, WeightBytes } from "./ggml-weights.js";

/** Memory the engine holds, for reports. */
export interface GgmlStats {
  /** Weights as planned: mapped from the file, repacked, copied. */
  weights: WeightBytes;
  /** What ggml holds (addon stats): copied weights by buffer type, persistent tensors, compute buffer, maps. */
  ggml: ReturnType<Ggml["stats"]>;
}

export class GgmlForward implements ForwardBackend<GgmlKV> {
  readonly kind = "ggml";
  readonly hookHint = "";
  private readonly spec: ArchSpec;
  private disposed = false;
  /** The scratch store of uncached calls (grown as needed, reused). */
  private scratch: GgmlKV | null = null;

  constructor(
    readonly config: ModelConfig,
    private readonly ggml: Ggml,
    private readonly weights: GgmlWeights,
    readonly cacheType: CacheType,
    /** RoPE frequency divisors [hd/2] for scaled RoPE, or null. */
    private readonly freqFactors: Float32Array | null,
  ) {
    this.spec = archSpec(config.arch);
  }

  canHook(): boolean {
    return true;
  }

  newStore(batch: number): GgmlKV {
    return new GgmlKV(this.ggml, batch, this.config, this.cacheType);
  }

  begin(inputs: CallInputs<GgmlKV>): BackendCall {
    const D = this.config.hiddenSize;
    const { B, T, ids, mask, positions, past } = inputs;
    const P = past?.length ?? 0;
    const io: Omit<CallIO, "store"> = {
      B,
      T,
      P,
      ids: Int32Array.from(ids, Number),
      pos: positions.map((p) => Math.max(0, p)),
      mask: additiveMask(past?.mask ?? mask.map(() => new Uint8Array(0)), mask, P, T), // [B, T, P+T]
      freqFactors: this.freqFactors,
    };
    // The store is looked up per graph: calls may interleave between graphs and share the scratch store.
    const store = () => past?.store ?? this.scratchFor(B, T);
    const run = (make: (b: Build) => number): Float32Array => {
      if (this.disposed) throw disposedError(); // disposed between two graphs of this call
      const g = this.ggml.graph();
      try {
        const out = make(new Build(g, this.weights, this.config, this.spec));
        g.expand(out);
        g.compute();
        return g.read(out);
      } finally {
        g.free();
      }
    };
    const hidden = (b: Build, x: Float32Array) => b.input("hidden", GGML_TYPE.F32, [D, T, B], x);
    return {
      embed: async () => {
        // ggml computes on this thread: let the event loop turn once per forward, so a server's queued requests
        // (and timers, I/O) get in between forwards and can be batched with the next one.
        await new Promise((r) => setImmediate(r));
        return run((b) => embedPart(b, { ...io, store: store() }));
      },
      attention: async (l, x) => run((b) => attnPart(b, l, hidden(b, x), { ...io, store: store() })),
      mlp: async (l, x) => run((b) => mlpPart(b, l, hidden(b, x))),
      span: async (first, last, x, lastTokens) =>
        run((b) => {
          const c = { ...io, store: store() };
          let h = hidden(b, x);
          for (let l = first; l < last; l++) h = blockPart(b, l, h, c);
          return blockPart(b, last, h, c, lastTokens);
        }),
    };
  }

  async head(rows: Float32Array, n: number): Promise<Float32Array> {
    if (this.disposed) throw disposedError();
    const g = this.ggml.graph();
    try {
      const b = new Build(g, this.weights, this.config, this.spec);
      const out = headPart(b, b.input("rows", GGML_TYPE.F32, [this.config.hiddenSize, n], rows));
      g.expand(out);
      g.compute();
      return g.read(out); // [V, n] = [n, V] row-major
    } finally {
      g.free();
    }
  }

  stats(): GgmlStats {
    return { weights: this.weights.bytes, ggml: this.ggml.stats() };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.scratch?.release();
    this.scratch = null;
    this.weights.dispose();
    this.ggml.dispose();
  }

  /** A store of B rows with T free slots for an uncached call. */
  private scratchFor(B: number, T: number): GgmlKV {
    if (this.scratch && this.scratch.batch !== B) {
      this.scratch.release();
      this.scratch = null;
    }
    this.scratch ??= this.newStore(B);
    this.scratch.reserve(0, T);
    return this.scratch;
  }
}
