/** engine.forkCache: continuing a forked cache equals running prefix + suffix uncached; the source is untouched. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import type { Engine, HookBinding } from "../../src/model/engine.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { BACKENDS } from "../helpers/engines.js";

/** Adds `coeff` times a fixed direction at layer 1's resid_pre to every real token (as a sweep steers). */
function steer(dim: number, coeffs: readonly number[]): HookBinding[] {
  const dir = Float32Array.from({ length: dim }, (_, i) => Math.sin(i + 1));
  return [
    {
      point: { layer: 1, site: "resid_pre" },
      fn: (ctx) => {
        for (let b = 0; b < ctx.batch; b++)
          for (let t = 0; t < ctx.seq; t++) {
            if (ctx.positions[b * ctx.seq + t]! < 0) continue;
            for (let i = 0; i < ctx.dim; i++)
              ctx.hidden[(b * ctx.seq + t) * ctx.dim + i]! += coeffs[b]! * dir[i]!;
          }
      },
    },
  ];
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Left-pad rows to one batch. */
function pad(rows: readonly number[][]): { ids: number[][]; mask: number[][] } {
  const T = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...new Array<number>(T - r.length).fill(0), ...r]),
    mask: rows.map((r) => [...new Array<number>(T - r.length).fill(0), ...r.map(() => 1)]),
  };
}

for (const { name: kind, make } of BACKENDS)
  for (const name of ["llama", "gpt2"] as const) {
    describe(`${kind}, ${name}: forkCache`, () => {
      let e: Engine;
      after(() => e?.dispose());
      const D = TINY_CONFIGS[name]!.hiddenSize;

      test("continuing a fork equals prefix + suffix uncached, padded rows included; the source is unchanged", async () => {
        e = await make(TINY_CONFIGS[name]!, randomWeights(TINY_CONFIGS[name]!, 5));
        assert.ok(e.forkCache, "the engine implements forkCache");
        // Two source rows (the second left-padded), each steered with its own coefficient.
        const prefixes = [
          [5, 9, 11, 40, 7],
          [3, 8, 100],
        ];
        const coeffs = [0.7, -1.3];
        const src = e.newCache(2);
        await e.forward(pad(prefixes), { cache: src, logits: "none", hooks: steer(D, coeffs) });
        // Each source row forked to 3 rows; ragged suffixes, left-padded inside the suffix part.
        const suffixes = [[12, 13, 14], [15], [16, 17], [18, 19, 20], [21, 22], [23]];
        const fork = e.forkCache!(src, 3, 3);
        assert.equal(fork.batch, 6);
        assert.equal(fork.length, src.length);
        const rowCoeffs = [0, 1, 2, 3, 4, 5].map((d) => coeffs[Math.floor(d / 3)]!);
        const got = await e.forward(pad(suffixes), {
          cache: fork,
          logits: "last",
          hooks: steer(D, rowCoeffs),
        });
        const want = await e.forward(pad(suffixes.map((s, d) => [...prefixes[Math.floor(d / 3)]!, ...s])), {
          logits: "last",
          hooks: steer(D, rowCoeffs),
        });
        const d = maxDiff(got.logits, want.logits);
        assert.ok(d < 1e-4, `fork continuation differs by ${d}`);

        // The source still continues as before the fork: same as its prefixes + one token uncached.
        assert.equal(src.length, 5);
        const next = await e.forward(
          { ids: [[30], [31]] },
          { cache: src, logits: "last", hooks: steer(D, coeffs) },
        );
        const alone = await e.forward(
          pad([
            [...prefixes[0]!, 30],
            [...prefixes[1]!, 31],
          ]),
          {
            logits: "last",
            hooks: steer(D, coeffs),
          },
        );
        const ds = maxDiff(next.logits, alone.logits);
        assert.ok(ds < 1e-4, `source after fork differs by ${ds}`);
      });

      test("a fork grows past its room; bad arguments are refused", async () => {
        e ??= await make(TINY_CONFIGS[name]!, randomWeights(TINY_CONFIGS[name]!, 5));
        const src = e.newCache(1);
        await e.forward({ ids: [[4, 5, 6]] }, { cache: src, logits: "none" });
        const fork = e.forkCache!(src, 2); // no room: the next call must grow it
        const tail = [
          [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
          [25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42],
        ];
        const got = await e.forward({ ids: tail }, { cache: fork, logits: "last" });
        const want = await e.forward({ ids: tail.map((t) => [4, 5, 6, ...t]) }, { logits: "last" });
        assert.ok(maxDiff(got.logits, want.logits) < 1e-4);
        const bad = (err: unknown) => isSteerlabError(err) && err.code === "bad_input";
        assert.throws(() => e.forkCache!(src, 0), bad);
        assert.throws(() => e.forkCache!(src, 2, -1), bad);
        assert.throws(() => e.forkCache!({ batch: 1, length: 3 }, 2), bad); // not this engine's cache
      });
    });
  }
