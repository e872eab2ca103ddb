/**
 * steerlab's Node-API addon over ggml (llama.cpp's tensor library), built at install from native/ggml_addon.cc
 * against the ggml shared libraries of the dev dependency node-llama-cpp (scripts/build-native.mjs).
 * Nothing happens at import: the addon loads on the first loadGgml() / ggmlAvailable().
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SteerlabError } from "../../errors.js";
import { GGML_TYPE as CODEC_TYPES } from "../../io/gguf-quant.js";

/** ggml's type enum values (the same numbers as GGUF's tensor types): steerlab's codec types and I32. */
export const GGML_TYPE = { ...CODEC_TYPES, I32: 26 } as const;

export interface GgmlAddon {
  /** The CPU device's description and its extra buffer types (e.g. ["AMX", "CPU_REPACK"]). */
  readonly device: string;
  readonly extraBufferTypes: readonly string[];
  /**
   * A CPU backend with `threads` compute threads on a persistent threadpool (not one created per compute).
   * `threadpool: false` lets ggml start and join its threads on every compute (for measuring what the pool saves).
   */
  backend(threads: number, options?: { threadpool?: boolean }): GgmlBackend;
}

export interface GgmlBackend {
  /** mmap a whole file read-only (MAP_SHARED). Errors name the file. */
  mapFile(path: string): GgmlMap;
  /**
   * A persistent weight tensor of ggml `type` and dims `ne` (ggml order: ne[0] is the contiguous one), whose bytes
   * are at `offset` in `src` (a mapped file or a buffer). mode:
   *   "map":    the tensor points into the mapping (src must be a GgmlMap), nothing is copied;
   *   "repack": copied into the first extra buffer type whose supports_op accepts a mul_mat with this tensor as
   *             src0 (AMX, CPU_REPACK), else into plain CPU memory; when src is a map, the mapped pages of the
   *             range are released afterwards (madvise MADV_DONTNEED on the page-aligned interior). A repacked
   *             tensor can only be mul_mat's first source (anything else throws);
   *   "copy":   copied into plain CPU memory.
   * Checks that offset + ggml_row_size(type, ne0) * rows fits in src, and that type and ne are valid (ne0 a
   * multiple of the block size); a bad one throws a clear Error (never a ggml abort).
   */
  weight(
    src: GgmlMap | ArrayBufferView,
    offset: number,
    type: number,
    ne: readonly number[],
    mode: "map" | "repack" | "copy",
  ): GgmlTensor;
  /** A persistent zero-filled tensor (a key/value cache). */
  tensor(type: number, ne: readonly number[]): GgmlTensor;
  /** A new graph to build and run (compute() may run it again). At most `maxNodes` (default 16384) tensors. */
  graph(maxNodes?: number): GgmlGraph;
  /**
   * Bytes held: weights copied (by buffer type name: "CPU", "CPU_REPACK", "AMX"), persistent tensors, the compute
   * buffer, mapped files.
   */
  stats(): { copied: Record<string, number>; tensors: number; compute: number; mapped: number };
  /** Frees everything of this backend (tensors, maps, threadpool). Using it afterwards throws. */
  dispose(): void;
}

/** close() unmaps once no "map" tensor points into the mapping any more (at once if none does). */
export interface GgmlMap {
  readonly path: string;
  readonly size: number;
  /**
   * The loader's NaN/Inf check on the mapped bytes (exponent bits all ones), in native code: for F32 / F16 / BF16
   * the index of the first non-finite of `count` values at `offset`; for a block type, the index of the first
   * block whose f16 fields at byte offsets `halves` (scale, min: the table in io/gguf-quant.ts) are non-finite;
   * -1 when none. The scan touches every page of the range.
   */
  firstNonFinite(offset: number, type: number, count: number, halves?: readonly number[]): number;
  close(): void;
}
export interface GgmlTensor {
  readonly type: number;
  /** As given (trailing 1s dropped). */
  readonly ne: readonly number[];
  free(): void;
}

export type GgmlOp =
  | "get_rows" // [a, ids (I32)]
  | "add"
  | "mul" // [a, b] F32, b broadcast over a (ggml_can_repeat)
  | "scale" // [a] params [s]
  | "rms_norm"
  | "norm" // [a] params [eps]
  | "mul_mat" // [a, b] -> ggml_mul_mat(a, b): a is the weight ([K, N, ...]), b the activations ([K, M, ...], F32)
  | "silu"
  | "gelu" // [a]; gelu = ggml_gelu (tanh approximation, through an f16 table on CPU)
  | "tanh" // [a]
  | "rope" // [a, pos (I32 [a.ne[2]]), freqFactors? (F32 [nDims/2])] params
  //   [nDims, mode, nCtxOrig, freqBase, freqScale, extFactor, attnFactor, betaFast, betaSlow]; mode 0 or 2
  | "soft_max" // [a, mask?] params [scale, maxBias]  (ggml_soft_max_ext)
  | "reshape" // [a] params = new ne (1 to 4 numbers)
  | "view" // [a] params [ne0, ne1, ne2, ne3, nb1, nb2, nb3, offsetBytes]  (ggml_view_4d)
  | "permute" // [a] params [p0, p1, p2, p3]
  | "cont"
  | "transpose" // [a]
  | "cpy"; // [a, b]: copy a into b (b usually a view of a persistent tensor); returns the cpy node

export interface GgmlGraph {
  /** A persistent tensor (weight, cache) as a node id of this graph. */
  ref(t: GgmlTensor): number;
  /** A graph input (F32, F16, BF16 or I32); `data` (matching type and size) is copied now, set at compute(). */
  input(type: number, ne: readonly number[], data: ArrayBufferView): number;
  op(name: GgmlOp, srcs: readonly number[], params?: readonly number[]): number;
  /** Shape of a node (ggml order, always 4 numbers), for checks while building. */
  shape(id: number): number[];
  /** Add a node and everything it needs to the graph, in call order (cache writes before the reads). */
  expand(id: number): void;
  /** Allocate (the backend's reused compute buffer), copy the inputs in, run. */
  compute(): void;
  /**
   * A node's values after compute(), as a new Float32Array (F32, F16 or BF16 nodes; strided ones are gathered).
   * Only expanded nodes, inputs, persistent tensors and views of those can be read (the allocator reuses the memory
   * of other nodes), and only until another graph is computed on the same backend.
   */
  read(id: number): Float32Array;
  /** Frees the graph's context (also done by GC). */
  free(): void;
}

interface NativeAddon {
  init(binsDir: string): { device: string; extraBufferTypes: string[]; threadpool: boolean };
  backend(threads: number, threadpool: boolean): GgmlBackend;
}

type Loaded = { ok: true; addon: GgmlAddon } | { ok: false; why: string; hint: string };
let loaded: Loaded | undefined;

const BUILD_HINT = "build it with `npm run build:native` (needs the dev dependency node-llama-cpp)";

/** The folder holding steerlab's package.json (src/runtime/ggml or dist/src/runtime/ggml below it). */
function packageRoot(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "native"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

function findPackage(from: string, name: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const p = join(dir, "node_modules", name);
    if (existsSync(join(p, "package.json"))) return p;
    if (dirname(dir) === dir) return undefined;
  }
}

function load(): Loaded {
  if (typeof process === "undefined" || !process.versions?.node) {
    return { ok: false, why: "the ggml backend needs Node.js", hint: "use the onnxruntime backend" };
  }
  const platform = `${process.platform}-${process.arch}`;
  const root = packageRoot();
  if (!root) return { ok: false, why: "steerlab's native/ folder was not found", hint: BUILD_HINT };
  const pkg = findPackage(root, `@node-llama-cpp/${platform}`);
  const bins = pkg && join(pkg, "bins", platform);
  if (!bins || !existsSync(join(bins, "libggml-base.so"))) {
    return {
      ok: false,
      why: `node-llama-cpp's ggml binaries for ${platform} are not installed`,
      hint: "install the dev dependencies (`npm ci` without --omit=dev) on a platform node-llama-cpp ships for",
    };
  }
  const file = join(root, "native", "build", "Release", "steerlab_ggml.node");
  if (!existsSync(file)) return { ok: false, why: `the ggml addon is not built (${file})`, hint: BUILD_HINT };
  try {
    const native = createRequire(import.meta.url)(file) as NativeAddon;
    const info = native.init(bins);
    const addon: GgmlAddon = {
      device: info.device,
      extraBufferTypes: Object.freeze([...info.extraBufferTypes]),
      backend: (threads, options) => native.backend(threads, options?.threadpool ?? true),
    };
    return { ok: true, addon };
  } catch (e) {
    return { ok: false, why: `the ggml addon failed to load: ${(e as Error).message}`, hint: BUILD_HINT };
  }
}

/** Whether the ggml backend can run here, and if not, why. */
export function ggmlAvailable(): { ok: true } | { ok: false; why: string } {
  loaded ??= load();
  return loaded.ok ? { ok: true } : { ok: false, why: loaded.why };
}

/** The ggml addon (loaded once). Throws SteerlabError "unsupported" naming what is missing. */
export function loadGgml(): GgmlAddon {
  loaded ??= load();
  if (!loaded.ok)
    throw new SteerlabError("unsupported", `ggml backend unavailable: ${loaded.why}`, { hint: loaded.hint });
  return loaded.addon;
}
