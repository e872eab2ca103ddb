/** Resuming a forward at a block from a saved resid_pre equals the full forward (the sweep's prefix reuse). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { HookBinding } from "../../src/model/engine.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { BACKENDS } from "../helpers/engines.js";

for (const { name: kind, make } of BACKENDS)
  for (const name of ["llama", "gpt2"] as const) {
    test(`${kind}, ${name}: startLayer + inputHidden reproduces the full forward, steered or not`, async () => {
      const e = await make(TINY_CONFIGS[name]!, randomWeights(TINY_CONFIGS[name]!, 5));
      const batch = {
        ids: [
          [0, 0, 5, 9, 11, 40],
          [3, 7, 8, 100, 12, 13],
        ],
        mask: [
          [0, 0, 1, 1, 1, 1],
          [1, 1, 1, 1, 1, 1],
        ],
      };
      const L = 1;
      let saved: Float32Array | null = null;
      await e.forward(batch, {
        logits: "none",
        stopAfterLayer: L - 1,
        hooks: [
          {
            point: { layer: L - 1, site: "resid_post" },
            fn: (ctx) => (saved = Float32Array.from(ctx.hidden)),
          },
        ],
      });
      assert.ok(saved);
      const steer: HookBinding[] = [
        {
          point: { layer: L, site: "resid_pre" },
          fn: (ctx) => {
            for (let i = 0; i < ctx.hidden.length; i++) ctx.hidden[i] = ctx.hidden[i]! + 0.5 * Math.sin(i);
          },
        },
      ];
      for (const hooks of [[], steer]) {
        const full = await e.forward(batch, { logits: "all", hooks });
        const resumed = await e.forward(batch, { logits: "all", hooks, startLayer: L, inputHidden: saved });
        assert.deepEqual(resumed.logits, full.logits);
      }
      await assert.rejects(
        e.forward(batch, { startLayer: L, inputHidden: new Float32Array(3) }),
        /inputHidden/,
      );
      await assert.rejects(
        e.forward(batch, { startLayer: L, inputHidden: saved, cache: e.newCache(2) }),
        /cannot be used with a cache/,
      );
      await e.dispose();
    });
  }
