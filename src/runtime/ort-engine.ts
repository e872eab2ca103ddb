/**
 * The fast path: an Engine that runs steerlab's own ONNX graphs (model/graph/) on onnxruntime-node.
 *
 *   ids ─► head.embed ─► resid_pre[0] ─► attn(0) ─► attn_out[0] ─(+)─► mlp(0) ─► mlp_out[0] ─(+)─► resid_post[0] ─► ...
 *                                  ... resid_post[L-1] ─► head.logits ─► logits
 * TypeScript holds the residual stream between graphs, does the residual adds and runs the hooks of the call at
 * each site. With granularity "block" each block is one graph (fewer runs, faster decode) and only the
 * resid_pre/resid_post sites can be hooked. Weights live only inside ORT once the sessions exist.
 * The KV cache (kv-cache.ts) is JS buffers with spare capacity that the graphs read in place; each call's new
 * keys and values come back as small outputs and are appended, so a decode step copies no cache.
 */
// onnxruntime-common: the API onnxruntime-node and onnxruntime-web share, so this engine runs in both
// (createOrtEngine builds node sessions; the web lab builds web sessions from the same graphs).
import type * as ort from "onnxruntime-common";
import { Tensor as OrtTensor } from "onnxruntime-common";
import { SteerlabError } from "../errors.js";
import { checkFiniteOutput } from "../io/finite.js";
import { archSpec } from "../model/arch/registry.js";
import { checkBatch, positionsFor } from "../model/batch.js";
import type { ModelConfig } from "../model/config.js";
import {
  type Batch,
  checkFork,
  checkStart,
  type Engine,
  type ForwardOptions,
  type ForwardResult,
  type HookBinding,
  type KVCache,
} from "../model/engine.js";
import {
  attnGraph,
  type BuiltGraph,
  blockGraph,
  headGraph,
  mlpGraph,
  weightFn,
} from "../model/graph/graphs.js";
import { hookName, type Site } from "../model/hooks.js";
import { ropeInvFreq } from "../model/rope.js";
import { checkWeights, type Weights } from "../model/weights.js";
import { additiveMask, ropeRows } from "./call-inputs.js";
import { OrtKVCache } from "./kv-cache.js";
import { createSession, noPrepack, type SessionSettings, sessionOptions } from "./session.js";

export interface OrtEngineOptions extends SessionSettings {
  /**
   * "site" (default): two graphs per block, every hook site available.
   * "block": one graph per block; hooks only at resid_pre / resid_post.
   */
  granularity?: "site" | "block";
  /**
   * Delete each tensor from `model.weights` once its graph is built, so the weights are never held twice
   * (lower peak memory). The caller's map is left empty of what was consumed.
   */
  consumeWeights?: boolean;
  /**
   * With tied embeddings the vocabulary matrix feeds both the embedding lookup and the output matmul, so MLAS's
   * packed copy for the matmul sits beside the original: V*D*4 bytes more (154 MiB for GPT-2 small). false
   * drops the packed copy; the output matmul is then slower (measured 6.5 → 8.2 ms per decode step, GPT-2 small).
   * Default true.
   */
  prepackTiedHead?: boolean;
}

type Blocks =
  | { kind: "site"; attn: ort.InferenceSession[]; mlp: ort.InferenceSession[] }
  | { kind: "block"; block: ort.InferenceSession[] };

export async function createOrtEngine(
  model: { config: ModelConfig; weights: Weights },
  opts: OrtEngineOptions = {},
): Promise<OrtEngine> {
  const c = model.config;
  checkWeights(c, model.weights, "createOrtEngine"); // every missing or misshapen tensor in one error
  const granularity = opts.granularity ?? "site";
  if (granularity !== "site" && granularity !== "block") {
    throw new SteerlabError("bad_input", `unknown granularity "${granularity}"`, {
      field: "granularity",
      expected: "site | block",
    });
  }
  const so = sessionOptions(opts);
  const w = weightFn(model.weights);
  const consume = (pred: (name: string) => boolean) => {
    if (!opts.consumeWeights) return;
    for (const name of [...model.weights.keys()]) if (pred(name)) model.weights.delete(name);
  };
  const sessions: ort.InferenceSession[] = [];
  const make = async (g: BuiltGraph, options = so) => {
    // Weights go in as in-memory external data: no protobuf copy of them (and no 2 GiB protobuf limit).
    const { bytes, files } = g.builder.encode(g.name, { external: true });
    const s = await createSession(bytes, { ...options, externalData: files }, g.name);
    sessions.push(s);
    return s;
  };
  try {
    let blocks: Blocks;
    if (granularity === "site") {
      const attn: ort.InferenceSession[] = [];
      const mlp: ort.InferenceSession[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        attn.push(await make(attnGraph(c, w, l)));
        mlp.push(await make(mlpGraph(c, w, l)));
        consume((n) => n.startsWith(`blocks.${l}.`));
      }
      blocks = { kind: "site", attn, mlp };
    } else {
      const block: ort.InferenceSession[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        block.push(await make(blockGraph(c, w, l)));
        consume((n) => n.startsWith(`blocks.${l}.`));
      }
      blocks = { kind: "block", block };
    }
    const tiedNoPack = c.tiedEmbeddings && opts.prepackTiedHead === false;
    const head = await make(headGraph(c, w), tiedNoPack ? noPrepack(so) : so);
    consume((n) => !n.startsWith("blocks."));
    const rope = archSpec(c.arch).positional === "rope" ? ropeInvFreq(c) : null;
    return new OrtEngine(c, blocks, head, rope);
  } catch (e) {
    await Promise.all(sessions.map((s) => s.release()));
    throw e;
  }
}

export class OrtEngine implements Engine {
  readonly kind = "onnxruntime";
  allowNonFinite = false;
  private disposed = false;

  constructor(
    readonly config: ModelConfig,
    private readonly blocks: Blocks,
    private readonly head: ort.InferenceSession,
    /** RoPE inverse frequencies [hd/2] (scaling applied), or null for learned positions. */
    private readonly rope: Float32Array | null,
  ) {}

  get granularity(): "site" | "block" {
    return this.blocks.kind;
  }

  newCache(batch: number): KVCache {
    if (!Number.isInteger(batch) || batch < 1) {
      throw new SteerlabError("bad_input", "cache batch must be a positive integer", {
        field: "batch",
        got: String(batch),
      });
    }
    const c = this.config;
    return new OrtKVCache(this, batch, c.nLayers, c.nKvHeads, c.headDim);
  }

  forkCache(cache: KVCache, rowsPerSource: number, room = 0): KVCache {
    const src = this.resolveCache(cache, cache.batch);
    if (!src) throw new SteerlabError("bad_input", "no cache to fork", { field: "cache" });
    checkFork(rowsPerSource, room);
    return src.fork(rowsPerSource, room);
  }

  async forward(batch: Batch, opts: ForwardOptions = {}): Promise<ForwardResult> {
    if (this.disposed)
      throw new SteerlabError("bad_input", "engine was disposed", { hint: "create a new engine" });
    const c = this.config;
    const D = c.hiddenSize;
    const L = c.nLayers;
    const { B, T, ids, mask } = checkBatch(batch, c.vocabSize);
    const last = opts.stopAfterLayer === undefined ? L - 1 : opts.stopAfterLayer;
    if (!Number.isInteger(last) || last < 0 || last >= L) {
      throw new SteerlabError("bad_input", `stopAfterLayer ${opts.stopAfterLayer} out of range`, {
        field: "stopAfterLayer",
        expected: `an integer in [0, ${L - 1}]`,
      });
    }
    const want = opts.logits ?? "last";
    if (last < L - 1 && (want !== "none" || opts.cache)) {
      throw new SteerlabError("bad_input", "stopAfterLayer skips blocks that logits or a cache need", {
        field: "stopAfterLayer",
        expected: 'logits "none" and no cache',
        got: `logits "${want}"${opts.cache ? " with a cache" : ""}`,
      });
    }
    const hooks = this.groupHooks(opts.hooks ?? []);
    const first = checkStart(opts, B * T * D, last);
    const cache = this.resolveCache(opts.cache, B);
    const P = cache?.length ?? 0;

    // Positions and key mask, continued from the cache (committed only when the call succeeds).
    const nextPos = cache ? Int32Array.from(cache.nextPos) : new Int32Array(B);
    const positions = positionsFor(mask, T, nextPos);
    const keyMask = mask.map((m, b) => concatMask(cache?.mask[b], m)); // [B][P + T]
    const maxPos = Math.max(...nextPos) - 1;
    if (maxPos >= c.maxPositions) {
      throw new SteerlabError("bad_input", `position ${maxPos} is beyond the model's context`, {
        field: "positions",
        expected: `< ${c.maxPositions} (max_position_embeddings)`,
      });
    }

    // The cache's spare slots are fed too (masked): its buffers go to ORT as they are, never copied.
    cache?.reserve(T);
    // Nothing cached: one masked slot of zeros, never a zero-size past (onnxruntime-web refuses one; DESIGN.md 4).
    // It adds exact zeros to the attention, so results are bit-identical.
    const C = cache && P > 0 ? cache.capacity : 1;
    const pastMask = cache?.mask ?? mask.map(() => new Uint8Array(0));
    const shared: Record<string, ort.Tensor> = {
      mask: new OrtTensor("float32", additiveMask(pastMask, mask, C, T), [B, 1, T, C + T]),
    };
    if (this.rope) {
      const { cos, sin } = ropeRows(positions, this.rope, c.maxPositions);
      shared.cos = new OrtTensor("float32", cos, [B, T, 1, c.headDim]);
      shared.sin = new OrtTensor("float32", sin, [B, T, 1, c.headDim]);
    }
    const fire = (layer: number, site: Site, hidden: Float32Array) => {
      const list = hooks.get(hookName(layer, site));
      if (!list) return;
      for (const fn of list) fn({ point: { layer, site }, hidden, batch: B, seq: T, dim: D, positions });
    };
    const hid = (x: Float32Array) => new OrtTensor("float32", x, [B, T, D]);

    // Embedding (the head graph with one dummy row to project: no zero-size tensors, see above).
    const headFeeds: Record<string, ort.Tensor> = {
      ids: new OrtTensor("int64", ids, [B, T]),
      hidden: new OrtTensor("float32", new Float32Array(D), [1, D]),
    };
    if (this.head.inputNames.includes("pos")) {
      headFeeds.pos = new OrtTensor(
        "int64",
        BigInt64Array.from(positions, (p) => BigInt(Math.max(0, p))),
        [B, T],
      );
    }
    // Resuming at block `first` (ForwardOptions.startLayer) skips the embedding: x starts as the given resid_pre.
    let x = opts.inputHidden
      ? Float32Array.from(opts.inputHidden)
      : ((await this.head.run(headFeeds, ["embed"])).embed!.data as Float32Array); // [B, T, D]

    for (let l = first; l <= last; l++) {
      fire(l, "resid_pre", x);
      const feeds = {
        ...shared,
        hidden: hid(x),
        ...this.past(cache, l, B),
      };
      // Appends land in spare slots [P, P + T): a call that fails midway leaves the cache as it was.
      const keep = (r: ort.InferenceSession.ReturnType) =>
        cache?.write(l, r.new_k!.data as Float32Array, r.new_v!.data as Float32Array, T);
      if (this.blocks.kind === "site") {
        const a = await this.blocks.attn[l]!.run(feeds);
        keep(a);
        const attnOut = a.attn_out!.data as Float32Array; // [B, T, D]
        fire(l, "attn_out", attnOut);
        const mid = add(x, attnOut); // resid_mid [B, T, D]
        const mlpOut = (await this.blocks.mlp[l]!.run({ hidden: hid(mid) })).mlp_out!.data as Float32Array;
        fire(l, "mlp_out", mlpOut);
        x = add(mid, mlpOut); // resid_post [B, T, D]
      } else {
        const r = await this.blocks.block[l]!.run(feeds);
        keep(r);
        x = r.resid_post!.data as Float32Array;
      }
      fire(l, "resid_post", x);
    }

    if (cache) {
      cache.mask = keyMask;
      cache.nextPos = nextPos;
      cache.length = P + T;
    }

    if (want === "none") return { logits: new Float32Array(0), batch: B, seq: 0, vocab: c.vocabSize };
    const rows = want === "all" ? x : lastRows(x, B, T, D);
    const Tout = want === "all" ? T : 1;
    const out = await this.head.run(
      {
        ...headFeeds,
        ids: new OrtTensor("int64", new BigInt64Array(B), [B, 1]), // dummy: only the logits are read
        ...(headFeeds.pos ? { pos: new OrtTensor("int64", new BigInt64Array(B), [B, 1]) } : {}),
        hidden: new OrtTensor("float32", rows, [B * Tout, D]),
      },
      ["logits"],
    );
    const logits = out.logits!.data as Float32Array;
    checkFiniteOutput(logits, c.vocabSize, "logits", {
      allowNonFinite: opts.allowNonFinite ?? this.allowNonFinite,
    });
    return { logits, batch: B, seq: Tout, vocab: c.vocabSize };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const all =
      this.blocks.kind === "site" ? [...this.blocks.attn, ...this.blocks.mlp] : [...this.blocks.block];
    await Promise.all([...all, this.head].map((s) => s.release()));
  }

  private past(cache: OrtKVCache | null, l: number, B: number): { past_k: ort.Tensor; past_v: ort.Tensor } {
    if (cache && cache.length > 0) {
      const t = cache.tensors(l);
      return { past_k: t.k, past_v: t.v };
    }
    const { nKvHeads: KV, headDim: hd } = this.config;
    return {
      past_k: new OrtTensor("float32", new Float32Array(B * KV * hd), [B, KV, hd, 1]), // the masked slot
      past_v: new OrtTensor("float32", new Float32Array(B * KV * hd), [B, KV, 1, hd]),
    };
  }

  private resolveCache(kv: KVCache | undefined, B: number): OrtKVCache | null {
    if (kv === undefined) return null;
    if (!(kv instanceof OrtKVCache) || kv.owner !== this) {
      throw new SteerlabError("bad_input", "this cache was not created by this engine", {
        field: "cache",
        hint: "create it with engine.newCache(batch)",
      });
    }
    if (kv.batch !== B) {
      throw new SteerlabError("bad_input", "cache batch size differs from the batch", {
        field: "cache",
        expected: String(kv.batch),
        got: String(B),
      });
    }
    return kv;
  }

  private groupHooks(bindings: readonly HookBinding[]): Map<string, HookBinding["fn"][]> {
    const m = new Map<string, HookBinding["fn"][]>();
    for (const h of bindings) {
      const { layer, site } = h.point;
      if (!Number.isInteger(layer) || layer < 0 || layer >= this.config.nLayers) {
        throw new SteerlabError("bad_input", `hook layer ${layer} out of range`, {
          field: "hooks",
          expected: `a resolved layer in [0, ${this.config.nLayers - 1}]`,
        });
      }
      if (this.blocks.kind === "block" && (site === "attn_out" || site === "mlp_out")) {
        throw new SteerlabError("unsupported", `hook site ${site} needs granularity "site"`, {
          field: "hooks",
          got: hookName(layer, site),
          hint: 'create the engine with granularity: "site" to hook attn_out / mlp_out',
        });
      }
      const key = hookName(layer, site);
      m.set(key, [...(m.get(key) ?? []), h.fn]);
    }
    return m;
  }
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

/** [B, T, D] → [B, 1, D]: each row's last token (rows are left-padded, so the last token is real). */
function lastRows(x: Float32Array, B: number, T: number, D: number): Float32Array {
  const out = new Float32Array(B * D);
  for (let b = 0; b < B; b++) out.set(x.subarray(((b + 1) * T - 1) * D, (b + 1) * T * D), b * D);
  return out;
}

function concatMask(prev: Uint8Array | undefined, next: Uint8Array): Uint8Array {
  if (!prev || prev.length === 0) return next;
  const out = new Uint8Array(prev.length + next.length);
  out.set(prev);
  out.set(next, prev.length);
  return out;
}
