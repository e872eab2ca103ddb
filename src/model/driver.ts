/**
 * The one forward driver: the Engine contract (engine.ts) over any compute backend (backend.ts). Everything that
 * is the same whatever computes the blocks lives here, once:
 *
 *   checks (batch, stopAfterLayer, startLayer, logits mode, hooks, cache) ─► positions + context check
 *   ─► reserve cache slots ─► x = embed | inputHidden
 *   ─► per block l: [resid_pre] ─► attention ─► [attn_out] ─(+)─► mlp ─► [mlp_out] ─(+)─► [resid_post]
 *                   (or the backend's fused block between [resid_pre] and [resid_post], or a span of
 *                   blocks chosen per call: up to the next block where a hook needs the stream)
 *   ─► commit the cache ─► rows (all | last) ─► head ─► non-finite check
 *
 * Each hook at a [site] gets its own copy of the positions (one hook cannot change what a later one selects) and
 * must edit the buffer in place (checkHookBuffer).
 */
import { SteerlabError } from "../errors.js";
import { checkFiniteOutput } from "../io/finite.js";
import type { ForwardBackend, KVStore } from "./backend.js";
import { checkBatch, positionsFor } from "./batch.js";
import type { ModelConfig } from "./config.js";
import {
  type Batch,
  checkFork,
  checkStart,
  type Engine,
  type ForwardOptions,
  type ForwardResult,
  type Hook,
  type HookBinding,
  type KVCache,
} from "./engine.js";
import { checkHookBuffer, hookName, isSite, SITES, type Site } from "./hooks.js";

/** A cache as the driver keeps it: the backend's key/value store plus the bookkeeping every backend shares. */
export class DriverCache<S extends KVStore<S>> implements KVCache {
  /** Tokens held per row, padding included. */
  length = 0;
  /** [B][length] 1 = real token, 0 = padding, for every cached token. */
  mask: Uint8Array[];
  /** [B] real tokens seen so far per row = the next real token's position. */
  nextPos: Int32Array;

  constructor(
    readonly owner: object,
    readonly batch: number,
    readonly store: S,
  ) {
    this.mask = Array.from({ length: batch }, () => new Uint8Array(0));
    this.nextPos = new Int32Array(batch);
  }
}

function bad(message: string, field: string, expected: string, got: string): SteerlabError {
  return new SteerlabError("bad_input", message, { field, expected, got });
}

/** The error of any use of a disposed engine (also a forward that was running when it was disposed). */
export function disposedError(): SteerlabError {
  return new SteerlabError("bad_input", "engine was disposed", { hint: "create a new engine" });
}

export class ForwardDriver<S extends KVStore<S>> implements Engine {
  allowNonFinite = false;
  private disposed = false;

  constructor(protected readonly backend: ForwardBackend<S>) {}

  get config(): ModelConfig {
    return this.backend.config;
  }

  get kind(): string {
    return this.backend.kind;
  }

  newCache(batch: number): KVCache {
    if (this.disposed) throw disposedError();
    if (!Number.isInteger(batch) || batch < 1)
      throw bad("cache batch size must be a positive integer", "batch", "an integer >= 1", String(batch));
    return new DriverCache(this, batch, this.backend.newStore(batch));
  }

  forkCache(cache: KVCache, rowsPerSource: number, room = 0): KVCache {
    const src = this.ownCache(cache);
    checkFork(rowsPerSource, room);
    const n = rowsPerSource;
    const out = new DriverCache(this, src.batch * n, src.store.fork(n, src.length, room));
    out.length = src.length;
    out.mask = Array.from({ length: out.batch }, (_, d) => src.mask[Math.floor(d / n)]!.slice());
    out.nextPos = Int32Array.from({ length: out.batch }, (_, d) => src.nextPos[Math.floor(d / n)]!);
    return out;
  }

  async forward(batch: Batch, opts: ForwardOptions = {}): Promise<ForwardResult> {
    if (this.disposed) throw disposedError();
    const c = this.config;
    const D = c.hiddenSize;
    const V = c.vocabSize;
    const L = c.nLayers;
    const { B, T, ids, mask } = checkBatch(batch, V); // ids [B*T], mask [B][T]
    const want = opts.logits ?? "last";
    const last = opts.stopAfterLayer ?? L - 1;
    if (!Number.isInteger(last) || last < 0 || last >= L)
      throw bad(
        `stopAfterLayer ${last} out of range`,
        "stopAfterLayer",
        `an integer in [0, ${L - 1}]`,
        String(last),
      );
    if (last < L - 1 && (want !== "none" || opts.cache)) {
      throw bad(
        "stopAfterLayer skips blocks that logits or a cache need",
        "stopAfterLayer",
        'logits "none" and no cache',
        `logits "${want}"${opts.cache ? " with a cache" : ""}`,
      );
    }
    const hooks = this.groupHooks(opts.hooks ?? []);
    const first = checkStart(opts, B * T * D, last);
    this.checkSpans(first, last);
    const cache = opts.cache === undefined ? null : this.ownCache(opts.cache, B);
    const P = cache?.length ?? 0;

    // Positions [B, T]: real tokens before each one in its row, across cached calls; -1 for padding.
    const nextPos = cache ? Int32Array.from(cache.nextPos) : new Int32Array(B);
    const positions = positionsFor(mask, T, nextPos);
    const maxPos = Math.max(...nextPos) - 1;
    if (maxPos >= c.maxPositions)
      throw bad(
        `position ${maxPos} is beyond the model's context`,
        "ids",
        `positions < ${c.maxPositions} (max_position_embeddings)`,
        String(maxPos),
      );

    if (cache) cache.store.reserve(P, P + T);
    const call = this.backend.begin({
      B,
      T,
      ids,
      mask,
      positions,
      past: cache ? { store: cache.store, length: P, mask: cache.mask } : null,
    });
    const fire = (layer: number, site: Site, hidden: Float32Array): void => {
      for (const fn of hooks.get(key(layer, site)) ?? []) {
        const ctx = {
          point: { layer, site },
          hidden,
          batch: B,
          seq: T,
          dim: D,
          positions: positions.slice(),
        };
        fn(ctx);
        checkHookBuffer(ctx.hidden, hidden, layer, site);
      }
    };
    const inner = (l: number) => hooks.has(key(l, "attn_out")) || hooks.has(key(l, "mlp_out"));

    // x [B, T, D]: the residual stream (resumed from inputHidden when starting above block 0).
    let x = opts.inputHidden ? Float32Array.from(opts.inputHidden) : await call.embed();
    let lastOnly = false; // x holds only each row's last token ([B, 1, D]) after the last block
    // The last block of the stretch from l on where no hook of this call needs the stream.
    const stretch = (l: number) => {
      let e = l;
      while (
        e < last &&
        !hooks.has(key(e, "resid_post")) &&
        !hooks.has(key(e + 1, "resid_pre")) &&
        !inner(e + 1)
      )
        e++;
      return e;
    };
    for (let l = first; l <= last; l++) {
      fire(l, "resid_pre", x);
      if (call.span && !inner(l)) {
        const e = stretch(l);
        // Only the last tokens go on to the head: the last block's MLP need not see the others.
        lastOnly = e === L - 1 && want === "last" && !hooks.has(key(e, "resid_post"));
        x = await call.span(l, e, x, lastOnly);
        l = e;
      } else if (call.block && !(call.attention && call.mlp && inner(l))) {
        x = await call.block(l, x);
        l = this.backend.spanOf?.(l)[1] ?? l; // hooks inside a span were refused up front (canHook)
      } else {
        const a = await call.attention!(l, x);
        fire(l, "attn_out", a);
        addInPlace(x, a); // resid_mid
        const m = await call.mlp!(l, x);
        fire(l, "mlp_out", m);
        addInPlace(x, m);
      }
      fire(l, "resid_post", x);
    }

    // Every block ran: the appended slots become part of the cache.
    if (cache) {
      cache.mask = mask.map((m, b) => concat(cache.mask[b]!, m));
      cache.nextPos = nextPos;
      cache.length = P + T;
    }

    if (want === "none") return { logits: new Float32Array(0), batch: B, seq: 0, vocab: V };
    const Tout = want === "all" ? T : 1;
    const rows = want === "all" || lastOnly ? x : lastRows(x, B, T, D); // [B, Tout, D]
    const logits = await this.backend.head(rows, B * Tout); // [B, Tout, V]
    checkFiniteOutput(logits, V, "logits", { allowNonFinite: opts.allowNonFinite ?? this.allowNonFinite });
    return { logits, batch: B, seq: Tout, vocab: V };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.backend.dispose();
  }

  /** startLayer and stopAfterLayer must fall on the edges of the backend's fused spans. */
  private checkSpans(first: number, last: number): void {
    const span = this.backend.spanOf;
    if (!span) return;
    const at = (l: number, edge: 0 | 1, field: string) => {
      const s = span.call(this.backend, l);
      if (s[edge] !== l)
        throw new SteerlabError(
          "unsupported",
          `${field} ${l} falls inside blocks ${s[0]}..${s[1]}, which run as one graph`,
          {
            field,
            got: String(l),
            hint: this.backend.hookHint,
          },
        );
    };
    at(first, 0, "startLayer");
    at(last, 1, "stopAfterLayer");
  }

  /** The cache as this engine's, or a clear error (a cache of another engine, or of another batch size). */
  private ownCache(kv: KVCache, B?: number): DriverCache<S> {
    if (!(kv instanceof DriverCache) || kv.owner !== this)
      throw new SteerlabError("bad_input", "cache was not made by this engine", {
        field: "cache",
        hint: "use engine.newCache(batch)",
      });
    if (B !== undefined && kv.batch !== B)
      throw bad("cache batch size differs from the batch", "cache", `${kv.batch} rows`, String(B));
    return kv as DriverCache<S>;
  }

  /** Validate every binding once (layer, site, what the backend can serve); group them by point, in order. */
  private groupHooks(bindings: readonly HookBinding[]): Map<number, Hook[]> {
    const L = this.config.nLayers;
    const m = new Map<number, Hook[]>();
    for (const h of bindings) {
      const { layer, site } = h.point;
      if (!Number.isInteger(layer) || layer < 0 || layer >= L)
        throw bad(
          `hook layer ${layer} out of range`,
          "hooks.point.layer",
          `an integer in [0, ${L - 1}]`,
          String(layer),
        );
      if (!isSite(site)) throw bad("unknown hook site", "hooks.point.site", SITES.join(" | "), String(site));
      if (!this.backend.canHook({ layer, site }))
        throw new SteerlabError(
          "unsupported",
          `this ${this.kind} engine cannot hook ${hookName(layer, site)}`,
          { field: "hooks", hint: this.backend.hookHint },
        );
      const k = key(layer, site);
      m.set(k, [...(m.get(k) ?? []), h.fn]);
    }
    return m;
  }
}

function key(layer: number, site: Site): number {
  return layer * SITES.length + SITES.indexOf(site);
}

function addInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
}

/** [B, T, D] → [B, 1, D]: each row's last token (rows are left-padded, so the last token is real). */
function lastRows(x: Float32Array, B: number, T: number, D: number): Float32Array {
  const out = new Float32Array(B * D);
  for (let b = 0; b < B; b++) out.set(x.subarray(((b + 1) * T - 1) * D, (b + 1) * T * D), b * D);
  return out;
}

function concat(prev: Uint8Array, next: Uint8Array): Uint8Array {
  const out = new Uint8Array(prev.length + next.length);
  out.set(prev);
  out.set(next, prev.length);
  return out;
}
