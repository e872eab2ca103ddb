/**
 * The fast path: the forward driver (model/driver.ts) over steerlab's own ONNX graphs (model/graph/) on ONNX
 * Runtime (ort-backend.ts). createOrtEngine builds the graphs block by block and hands each its weights:
 *
 *   ids ─► head.embed ─► resid_pre[0] ─► attn(0) ─► attn_out[0] ─(+)─► mlp(0) ─► mlp_out[0] ─(+)─► resid_post[0] ─► ...
 *                                  ... resid_post[L-1] ─► head.logits ─► logits
 * With granularity "block" each block is one graph (fewer runs, faster decode) and only the resid_pre/resid_post
 * sites can be hooked. Weights live only inside ORT once the sessions exist.
 */
// onnxruntime-common: the API onnxruntime-node and onnxruntime-web share, so this engine runs in both
// (createOrtEngine builds node sessions; the web lab builds web sessions from the same graphs).
import type * as ort from "onnxruntime-common";
import { SteerlabError } from "../errors.js";
import { archSpec } from "../model/arch/registry.js";
import type { ModelConfig } from "../model/config.js";
import { ForwardDriver } from "../model/driver.js";
import {
  attnGraph,
  type BuiltGraph,
  blockGraph,
  headGraph,
  mlpGraph,
  spanGraph,
  weightFn,
} from "../model/graph/graphs.js";
import { nbitsHeldBytes } from "../model/graph/nbits.js";
import { resolveLayer } from "../model/hooks.js";
import { ropeInvFreq } from "../model/rope.js";
import {
  checkWeights,
  expectedWeights,
  gib,
  isQuant,
  LazyWeights,
  type ModelWeights,
  W,
} from "../model/weights.js";
import { numel } from "../tensor.js";
import type { OrtKV } from "./kv-cache.js";
import { OrtBackend, type OrtBlocks } from "./ort-backend.js";
import { createSession, noPrepack, type SessionSettings, sessionOptions } from "./session.js";

export interface OrtEngineOptions extends SessionSettings {
  /**
   * "site" (default): two graphs per block, every hook site available.
   * "block": one graph per block; hooks only at resid_pre / resid_post.
   * { hookLayers }: the blocks between hook layers run as one graph each (fewest runs per forward); hooks only
   * at resid_pre / resid_post of these layers and at the other edges of the spans (negative = from the end).
   * For callers that know their steered or read layers up front (a server, a sweep).
   */
  granularity?: "site" | "block" | { hookLayers: readonly number[] };
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
  /**
   * How quantized weights (GGUF Q4_0, Q8_0, K-quants, ...) multiply: "int8" (default) quantizes the activations
   * per block to int8, as llama.cpp does, on MLAS's fast kernels; "f32" computes in f32, exactly the dequantized
   * model (slower; 8-bit types much slower). See model/graph/nbits.ts.
   */
  quantCompute?: "int8" | "f32";
  /** Plain notes: how much memory the weights will take in ONNX Runtime, said before the build takes it. */
  onInfo?: (message: string) => void;
  /** Called after each block's graphs are built (and its weights read and handed over). */
  onProgress?: (e: { label: string; done: number; total: number }) => void;
}

/**
 * Bytes of weights ONNX Runtime will hold for this model, known before any is read: f32 tensors 4 bytes a value,
 * quantized matrices in MatMulNBits form; a tied embedding once (the head shares it).
 */
export function engineWeightBytes(c: ModelConfig, weights: ModelWeights): number {
  let n = 0;
  for (const [name, shape] of expectedWeights(c)) {
    const w = weights instanceof LazyWeights ? null : weights.get(name);
    const type = weights instanceof LazyWeights ? weights.typeOf(name) : w && isQuant(w) ? w.ggmlType : null;
    n += type === null ? 4 * numel(shape) : nbitsHeldBytes(type, shape[0]!, shape[1]!);
  }
  return n;
}

export async function createOrtEngine(
  model: { config: ModelConfig; weights: ModelWeights },
  opts: OrtEngineOptions = {},
): Promise<OrtEngine> {
  const c = model.config;
  checkWeights(c, model.weights, "createOrtEngine"); // every missing or misshapen tensor in one error
  const granularity = opts.granularity ?? "site";
  const spans =
    typeof granularity === "object" && granularity ? spansFor(granularity.hookLayers, c.nLayers) : null;
  if (granularity !== "site" && granularity !== "block" && !spans) {
    throw new SteerlabError("bad_input", `unknown granularity "${String(granularity)}"`, {
      field: "granularity",
      expected: "site | block | { hookLayers: [...] }",
    });
  }
  const so = sessionOptions(opts);
  const gs = { quantAccuracy: opts.quantCompute === "f32" ? 0 : 4 } as const;
  const w = weightFn(model.weights);
  const consume = (pred: (name: string) => boolean) => {
    if (!opts.consumeWeights) return;
    for (const name of [...model.weights.keys()]) if (pred(name)) model.weights.delete(name);
  };
  opts.onInfo?.(
    `building ${c.nLayers} blocks on ONNX Runtime: ${gib(engineWeightBytes(c, model.weights))} of weights` +
      ` (read from the file block by block)`,
  );
  const progress = (done: number) =>
    opts.onProgress?.({ label: "loading blocks", done, total: c.nLayers + 1 });
  const sessions: ort.InferenceSession[] = [];
  let heldBytes = 0;
  const make = async (g: BuiltGraph, options = so) => {
    heldBytes += g.weightBytes;
    // Weights go in as in-memory external data: no protobuf copy of them (and no 2 GiB protobuf limit).
    const { bytes, files } = g.builder.encode(g.name, { external: true });
    const s = await createSession(bytes, { ...options, externalData: files }, g.name);
    sessions.push(s);
    return s;
  };
  try {
    let blocks: OrtBlocks;
    if (granularity === "site") {
      const attn: ort.InferenceSession[] = [];
      const mlp: ort.InferenceSession[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        attn.push(await make(attnGraph(c, w, l, gs)));
        mlp.push(await make(mlpGraph(c, w, l, gs)));
        consume((n) => W.inBlock(n, l));
        progress(l + 1);
      }
      blocks = { kind: "site", attn, mlp };
    } else if (spans) {
      const built: { from: number; to: number; session: ort.InferenceSession }[] = [];
      for (const [from, to] of spans) {
        built.push({ from, to, session: await make(spanGraph(c, w, from, to, gs)) });
        consume((n) =>
          Array.from({ length: to - from + 1 }, (_, i) => from + i).some((l) => W.inBlock(n, l)),
        );
        progress(to + 1);
      }
      blocks = { kind: "span", spans: built };
    } else {
      const block: ort.InferenceSession[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        block.push(await make(blockGraph(c, w, l, gs)));
        consume((n) => W.inBlock(n, l));
        progress(l + 1);
      }
      blocks = { kind: "block", block };
    }
    const tiedNoPack = c.tiedEmbeddings && opts.prepackTiedHead === false;
    const head = await make(headGraph(c, w, gs), tiedNoPack ? noPrepack(so) : so);
    consume((n) => !W.inAnyBlock(n));
    progress(c.nLayers + 1);
    const rope = archSpec(c.arch).positional === "rope" ? ropeInvFreq(c) : null;
    return new OrtEngine(c, blocks, head, rope, heldBytes);
  } catch (e) {
    await Promise.all(sessions.map((s) => s.release()));
    throw e;
  }
}

/**
 * The spans [from, to] of blocks that run as one graph when only `hookLayers` are hooked: cut before and after
 * each hook layer, so resid_pre and resid_post of each are between graphs.
 */
export function spansFor(hookLayers: readonly number[], nLayers: number): [number, number][] {
  if (!Array.isArray(hookLayers))
    throw new SteerlabError("bad_input", "granularity.hookLayers must be a list of layers", {
      field: "granularity.hookLayers",
      expected: "e.g. [10, 11, -1]",
      got: String(hookLayers),
    });
  const cuts = new Set([0, nLayers]);
  for (const l of hookLayers) {
    let r: number;
    try {
      r = resolveLayer(l, nLayers);
    } catch (e) {
      // resolveLayer's own message already names the layer and the range; only the field is added
      const brief = e instanceof SteerlabError ? e.brief : String(e);
      throw new SteerlabError("bad_input", brief, {
        field: "granularity.hookLayers",
        expected: `integers in [-${nLayers}, ${nLayers - 1}]`,
        got: String(l),
      });
    }
    cuts.add(r).add(r + 1);
  }
  const at = [...cuts].sort((a, b) => a - b);
  return at.slice(1).map((end, i) => [at[i]!, end - 1]);
}

/** The forward driver over steerlab's graphs on ONNX Runtime sessions (node or web). */
export class OrtEngine extends ForwardDriver<OrtKV> {
  constructor(
    config: ModelConfig,
    blocks: OrtBlocks,
    head: ort.InferenceSession,
    /** RoPE inverse frequencies [hd/2] (scaling applied), or null for learned positions. */
    rope: Float32Array | null,
    /** Bytes of weights handed to ONNX Runtime (initializers of every graph). */
    readonly weightBytes = 0,
  ) {
    super(new OrtBackend(config, blocks, head, rope));
  }

  /** "site", "block", or "span" ({ hookLayers }). */
  get granularity(): "site" | "block" | "span" {
    return (this.backend as OrtBackend).blocks.kind;
  }
}
