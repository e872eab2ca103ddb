/**
 * Time limits for tokenizer.json evaluation. A tokenizer.json may carry its own regular expressions (pre-tokenizer
 * Split, normalizer and decoder Replace); one that backtracks catastrophically would hang the process on a single
 * input, and a JavaScript regex cannot be interrupted in its own thread. So a tokenizer whose patterns are not all
 * ones steerlab knows to be linear (KNOWN_PATTERNS) runs encode and decode in a worker thread: the caller blocks on
 * shared memory with a deadline (Atomics.wait) and, past it, terminates the worker and throws. The round trip costs
 * 5-25 us per call (bench/guards.bench.ts); tokenizers with known patterns run inline.
 */
import { createRequire } from "node:module";
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import type { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { SteerlabError } from "../errors.js";
import { KNOWN_PATTERNS } from "./tokenizer-gguf.js";

export type SandboxRequest =
  | { op: "encode"; text: string; add: boolean }
  | {
      op: "decode";
      ids: number[];
      opts: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean };
    };
export type SandboxResponse =
  | { ok: true; ids?: number[]; text?: string; ready?: boolean }
  | { ok: false; message: string };
export interface SandboxWorkerData {
  json: object;
  port: MessagePort;
  flag: SharedArrayBuffer;
  /** Absolute path of the library's CommonJS build. */
  lib: string;
}

/**
 * The worker: its own @huggingface/tokenizers instance answering one request at a time on a MessagePort, raising a
 * flag in shared memory when the answer is posted. Plain JavaScript with no loader (execArgv: []), so it starts the
 * same from dist/ and from the sources under tsx, whose loader thread would wait for the blocked main thread.
 */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { json, port, flag, lib } = workerData;
const { Tokenizer } = require(lib);
const done = new Int32Array(flag);
const hf = new Tokenizer(json, {});
const answer = (r) => { port.postMessage(r); Atomics.store(done, 0, 1); Atomics.notify(done, 0); };
port.on("message", (m) => {
  try {
    if (m.op === "encode") answer({ ok: true, ids: hf.encode(m.text, { add_special_tokens: m.add }).ids });
    else answer({ ok: true, text: hf.decode(m.ids, m.opts) });
  } catch (e) {
    answer({ ok: false, message: String(e && e.message) });
  }
});
answer({ ok: true, ready: true });
`;

/** Time allowed per call: a fixed part plus 20 us per character (normal encoding takes ~4 us per character). */
export function sandboxTimeoutMs(chars: number): number {
  return 5000 + 0.02 * chars;
}

/** Every `{ "Regex": ... }` pattern of a tokenizer.json object, wherever it sits. */
export function regexPatterns(json: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 64 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) {
      // Vocabularies and merges are long arrays of strings or pairs: nothing to find in them.
      if (v.length > 0 && typeof v[0] !== "object") return;
      for (const x of v) walk(x, depth + 1);
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      if (k === "Regex" && typeof x === "string") out.push(x);
      else if (k !== "vocab" && k !== "merges") walk(x, depth + 1);
    }
  };
  walk(json, 0);
  return out;
}

/** True when the tokenizer.json uses a regex steerlab has not measured as linear. */
export function needsSandbox(json: object): boolean {
  return regexPatterns(json).some((p) => !KNOWN_PATTERNS.has(p));
}

/** How long an unused sandbox worker is kept. */
const IDLE_MS = 10_000;

/** encode/decode through a worker thread with a deadline; restarted after a timeout. */
export class SandboxedTokenizer {
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private flag = new Int32Array(new SharedArrayBuffer(4));
  private idle: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly json: object,
    private readonly file: string,
  ) {}

  encode(text: string, add: boolean): number[] {
    return this.call({ op: "encode", text, add }, text.length).ids ?? [];
  }

  decode(
    ids: number[],
    opts: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean },
  ): string {
    return this.call({ op: "decode", ids, opts }, ids.length * 16).text ?? "";
  }

  private start(): MessagePort {
    if (this.port) return this.port;
    const { port1, port2 } = new MessageChannel();
    Atomics.store(this.flag, 0, 0);
    const data: SandboxWorkerData = {
      json: this.json,
      port: port2,
      flag: this.flag.buffer as SharedArrayBuffer,
      lib: createRequire(import.meta.url).resolve("@huggingface/tokenizers"),
    };
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: data,
      transferList: [port2],
    });
    this.worker.unref();
    this.port = port1;
    // Loading the library and the vocabulary: generous, but still bounded.
    this.wait(port1, 30_000, "starting the tokenizer sandbox");
    return port1;
  }

  private call(req: SandboxRequest, size: number): SandboxResponse & { ok: true } {
    const port = this.start();
    Atomics.store(this.flag, 0, 0);
    port.postMessage(req);
    const r = this.wait(port, sandboxTimeoutMs(size), req.op === "encode" ? "encoding" : "decoding");
    // An idle worker (and its copy of the vocabulary) goes away after a while; the next call starts a new one.
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), IDLE_MS);
    this.idle.unref();
    return r;
  }

  private wait(port: MessagePort, ms: number, what: string): SandboxResponse & { ok: true } {
    if (Atomics.wait(this.flag, 0, 0, ms) === "timed-out") {
      this.stop();
      const starting = what.startsWith("starting");
      throw new SteerlabError(
        starting ? "unsupported" : "bad_file",
        `tokenizer ${what} did not finish within ${Math.round(ms)} ms`,
        {
          file: this.file,
          ...(starting ? {} : { field: "regex patterns" }),
          hint: starting
            ? "the worker thread that runs this tokenizer did not start (out of memory or threads?)"
            : "a pre-tokenizer, normalizer or decoder regex of this tokenizer.json backtracks catastrophically " +
              "on this input; fix the pattern (or report the model)",
        },
      );
    }
    const r = receiveMessageOnPort(port)?.message as SandboxResponse | undefined;
    if (!r?.ok) {
      throw new SteerlabError("bad_input", `tokenizer ${what} failed`, {
        file: this.file,
        got: r && !r.ok ? r.message : "no answer",
      });
    }
    return r;
  }

  /** End the worker (it is restarted on the next call). */
  stop(): void {
    void this.worker?.terminate();
    this.port?.close();
    this.worker = null;
    this.port = null;
  }
}

/** What JsonTokenizer calls: the library inline, or the sandbox. */
export interface RawTokenizer {
  encode(text: string, add: boolean): number[];
  decode(
    ids: number[],
    opts: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean },
  ): string;
}

export function rawTokenizer(hf: HfTokenizer, json: object, file: string): RawTokenizer {
  if (needsSandbox(json)) return new SandboxedTokenizer(json, file);
  // A tokenizer.json the library accepted can still fail inside encode (a null where it expects an object):
  // that is the file's fault, so say so, as the sandbox does.
  const guard = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new SteerlabError("bad_input", `tokenizer ${what} failed`, { file, got: (e as Error).message });
    }
  };
  return {
    encode: (text, add) => guard("encoding", () => hf.encode(text, { add_special_tokens: add }).ids),
    decode: (ids, opts) => guard("decoding", () => hf.decode(ids, opts)),
  };
}
