/**
 * steerlab's own ONNX graphs (model/graph/) as a backend of the forward driver (model/driver.ts), on any
 * onnxruntime-common sessions: onnxruntime-node (createOrtEngine) or onnxruntime-web (the web lab).
 *
 *   head.embed ─► attn(l) ─► attn_out ─► mlp(l) ─► mlp_out ─► ...            granularity "site": every hook site
 *   head.embed ─► block(l) ─► resid_post ─► ...                             granularity "block": resid_pre/post
 *   head.embed ─► span(a..b) ─► resid_post[b] ─► ...                        { hookLayers }: resid_pre/post at the
 *                                                                           edges of the spans only
 *   rows ─► head.logits
 * Per call, the attention mask and the RoPE rows are built once and fed to every block. The cache's store
 * (kv-cache.ts) is fed as it is, spare slots masked, and each block's new keys and values are appended to it.
 */
import type * as ort from "onnxruntime-common";
import { Tensor as OrtTensor } from "onnxruntime-common";
import type { BackendCall, CallInputs, ForwardBackend } from "../model/backend.js";
import type { ModelConfig } from "../model/config.js";
import type { HookPoint } from "../model/hooks.js";
import { additiveMask, ropeRows } from "./call-inputs.js";
import { OrtKV } from "./kv-cache.js";

export type OrtBlocks =
  | { kind: "site"; attn: ort.InferenceSession[]; mlp: ort.InferenceSession[] }
  | { kind: "block"; block: ort.InferenceSession[] }
  /** Consecutive spans of blocks covering 0..L-1, each one graph (model/graph/graphs.ts spanGraph). */
  | { kind: "span"; spans: { from: number; to: number; session: ort.InferenceSession }[] };

const HINTS = {
  site: "",
  block: 'create the engine with granularity: "site" to hook attn_out / mlp_out',
  span: 'create the engine with these layers in granularity: { hookLayers: [...] }, or with granularity "site"',
};

export class OrtBackend implements ForwardBackend<OrtKV> {
  readonly kind = "onnxruntime";
  readonly hookHint: string;
  /** Per block: the index of its span (granularity "span"). */
  private readonly spanIndex: Int32Array;

  constructor(
    readonly config: ModelConfig,
    readonly blocks: OrtBlocks,
    private readonly headSession: ort.InferenceSession,
    /** RoPE inverse frequencies [hd/2] (scaling applied), or null for learned positions. */
    private readonly rope: Float32Array | null,
  ) {
    this.hookHint = HINTS[blocks.kind];
    this.spanIndex = new Int32Array(config.nLayers);
    if (blocks.kind === "span")
      for (const [i, s] of blocks.spans.entries()) this.spanIndex.fill(i, s.from, s.to + 1);
  }

  canHook(point: HookPoint): boolean {
    const { site, layer } = point;
    if (this.blocks.kind === "site") return true;
    if (site === "resid_pre") return this.spanOf(layer)[0] === layer;
    return site === "resid_post" && this.spanOf(layer)[1] === layer;
  }

  spanOf(l: number): readonly [number, number] {
    if (this.blocks.kind !== "span") return [l, l];
    const s = this.blocks.spans[this.spanIndex[l]!]!;
    return [s.from, s.to];
  }

  newStore(batch: number): OrtKV {
    const c = this.config;
    return new OrtKV(batch, c.nLayers, c.nKvHeads, c.headDim);
  }

  begin(inputs: CallInputs<OrtKV>): BackendCall {
    const c = this.config;
    const D = c.hiddenSize;
    const { B, T, ids, mask, positions, past } = inputs;
    const P = past?.length ?? 0;
    const store = past?.store ?? null;
    // Nothing cached: one masked slot of zeros, never a zero-size past (onnxruntime-web refuses one; DESIGN.md 4).
    // It adds exact zeros to the attention, so results are bit-identical.
    const C = store && P > 0 ? store.capacity : 1;
    const pastMask = past?.mask ?? mask.map(() => new Uint8Array(0));
    const shared: Record<string, ort.Tensor> = {
      mask: new OrtTensor("float32", additiveMask(pastMask, mask, C, T), [B, 1, T, C + T]),
    };
    if (this.rope) {
      const { cos, sin } = ropeRows(positions, this.rope, c.maxPositions);
      shared.cos = new OrtTensor("float32", cos, [B, T, 1, c.headDim]);
      shared.sin = new OrtTensor("float32", sin, [B, T, 1, c.headDim]);
    }
    const { nKvHeads: KV, headDim: hd } = c;
    const empty: { past_k: ort.Tensor; past_v: ort.Tensor } | null =
      store && P > 0
        ? null
        : {
            past_k: new OrtTensor("float32", new Float32Array(B * KV * hd), [B, KV, hd, 1]), // the masked slot
            past_v: new OrtTensor("float32", new Float32Array(B * KV * hd), [B, KV, 1, hd]),
          };
    const hid = (x: Float32Array) => new OrtTensor("float32", x, [B, T, D]);
    // One block's attention: feeds, then this call's keys and values appended at slots [P, P + T).
    // Blocks from..to in one run (one block without spans): its feeds, then this call's keys and values
    // appended at slots [P, P + T). A span names each block's K/V (past_k.l); a one-block graph past_k.
    const runAttn = async (
      s: ort.InferenceSession,
      from: number,
      x: Float32Array,
      to = from,
      named = false,
    ) => {
      const feeds: Record<string, ort.Tensor> = { ...shared, hidden: hid(x) };
      const sfx = (l: number) => (named ? `.${l}` : "");
      for (let l = from; l <= to; l++) {
        const t = empty ?? (({ k, v }) => ({ past_k: k, past_v: v }))(store!.tensors(l));
        feeds[`past_k${sfx(l)}`] = t.past_k;
        feeds[`past_v${sfx(l)}`] = t.past_v;
      }
      const r = await s.run(feeds);
      for (let l = from; l <= to; l++)
        store?.write(
          l,
          r[`new_k${sfx(l)}`]!.data as Float32Array,
          r[`new_v${sfx(l)}`]!.data as Float32Array,
          T,
          P,
        );
      return r;
    };
    const call: BackendCall = {
      embed: async () => {
        const feeds: Record<string, ort.Tensor> = {
          ids: new OrtTensor("int64", ids, [B, T]),
          hidden: new OrtTensor("float32", new Float32Array(D), [1, D]), // one dummy row: no zero-size tensors
        };
        if (this.headSession.inputNames.includes("pos")) {
          const pos = BigInt64Array.from(positions, (p) => BigInt(Math.max(0, p)));
          feeds.pos = new OrtTensor("int64", pos, [B, T]);
        }
        return (await this.headSession.run(feeds, ["embed"])).embed!.data as Float32Array; // [B, T, D]
      },
    };
    const blocks = this.blocks;
    if (blocks.kind === "site") {
      call.attention = async (l, x) => (await runAttn(blocks.attn[l]!, l, x)).attn_out!.data as Float32Array;
      call.mlp = async (l, x) => (await blocks.mlp[l]!.run({ hidden: hid(x) })).mlp_out!.data as Float32Array;
    } else if (blocks.kind === "block") {
      call.block = async (l, x) => (await runAttn(blocks.block[l]!, l, x)).resid_post!.data as Float32Array;
    } else {
      call.block = async (l, x) => {
        const s = blocks.spans[this.spanIndex[l]!]!;
        return (await runAttn(s.session, s.from, x, s.to, true)).resid_post!.data as Float32Array;
      };
    }
    return call;
  }

  async head(rows: Float32Array, n: number): Promise<Float32Array> {
    const D = this.config.hiddenSize;
    const feeds: Record<string, ort.Tensor> = {
      ids: new OrtTensor("int64", new BigInt64Array(1), [1, 1]), // dummy: only the logits are read
      hidden: new OrtTensor("float32", rows, [n, D]),
    };
    if (this.headSession.inputNames.includes("pos"))
      feeds.pos = new OrtTensor("int64", new BigInt64Array(1), [1, 1]);
    return (await this.headSession.run(feeds, ["logits"])).logits!.data as Float32Array;
  }

  async dispose(): Promise<void> {
    const b = this.blocks;
    const all =
      b.kind === "site"
        ? [...b.attn, ...b.mlp]
        : b.kind === "block"
          ? [...b.block]
          : b.spans.map((s) => s.session);
    await Promise.all([...all, this.headSession].map((s) => s.release()));
  }
}
