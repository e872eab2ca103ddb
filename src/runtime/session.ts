/**
 * ONNX Runtime session settings in one place: intra-op threads, optimization level, spinning. Every graph of an
 * engine gets the same options; the model bytes are handed over and not kept.
 */
import os from "node:os";
import * as ort from "onnxruntime-node";
import { SteerlabError } from "../errors.js";

export interface SessionSettings {
  /** Intra-op threads per session. Default: the cores available to this process. */
  threads?: number;
  /**
   * Let idle pool threads spin (lower latency per kernel, but an engine runs many sessions in a row, each with
   * its own pool, and spinning pools steal the cores: measured 3-10x slower decode on 2 cores). Default false.
   */
  spin?: boolean;
  /**
   * ORT's CPU memory arena. Off by default: every graph is its own session with its own arena, and arenas keep
   * their high-water mark (a long prompt left ~40 MiB per session held), while plain malloc gives memory back.
   */
  arena?: boolean;
  /**
   * Write ONNX Runtime's per-node profile of every session to files starting with this path prefix (each is
   * written when its session is released). For finding where a forward's time goes (bench/ort-profile.ts).
   */
  profilePrefix?: string;
}

/** More intra-op threads than this only adds start-up time and contention (each is an OS thread per session). */
export const MAX_THREADS = 1024;

export function resolveThreads(threads: number | undefined): number {
  const n = threads ?? os.availableParallelism();
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new SteerlabError("bad_input", `threads must be an integer in [1, ${MAX_THREADS}]`, {
      field: "threads",
      expected: `1..${MAX_THREADS} (this machine has ${os.availableParallelism()} cores)`,
      got: String(threads),
    });
  }
  return n;
}

export function sessionOptions(s: SessionSettings): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ["cpu"],
    intraOpNumThreads: resolveThreads(s.threads),
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    enableCpuMemArena: s.arena ?? false,
    ...(s.profilePrefix ? { enableProfiling: true, profileFilePrefix: s.profilePrefix } : {}),
    extra: {
      session: {
        intra_op: { allow_spinning: s.spin ? "1" : "0" },
        // With spinning on, stop it after each run so the next graph's pool gets the cores.
        force_spinning_stop: "1",
      },
    },
  };
}

export async function createSession(
  bytes: Uint8Array,
  opts: ort.InferenceSession.SessionOptions,
  name: string,
): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, opts);
  } catch (e) {
    throw new SteerlabError(
      "unsupported",
      `onnxruntime could not load graph ${name}: ${(e as Error).message}`,
      {
        field: name,
        hint: "a graph-builder bug or an onnxruntime-node without this operator",
      },
    );
  }
}

/**
 * The same options without weight prepacking. For a tied embedding (one tensor feeding the embedding Gather and
 * the output Gemm), MLAS would keep a packed copy beside the original: the vocabulary matrix twice.
 */
export function noPrepack(o: ort.InferenceSession.SessionOptions): ort.InferenceSession.SessionOptions {
  const extra = (o.extra ?? {}) as { session?: Record<string, unknown> };
  return { ...o, extra: { ...extra, session: { ...extra.session, disable_prepacking: "1" } } };
}
