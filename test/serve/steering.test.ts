/**
 * Steering through the server equals steering through the library: for the same vector, coefficient, layers
 * and positions, a request's tokens and logprobs are the library's (generate + a full uncached recompute).
 * The three request forms (steering, control_vectors with a llama.cpp GGUF, vllm_xargs.steer) and inline data
 * agree; `false` is unsteered; an absent field takes the server default; the response echoes what was applied.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { HookBinding } from "../../src/model/engine.js";
import { generate } from "../../src/model/generate.js";
import { nextTokenLogprobs } from "../../src/model/logprobs.js";
import { createApp } from "../../src/serve/app.js";
import { prepareChat, steerCallHooks } from "../../src/steer/steer-call.js";
import { CHAT_PROMPT, type Served, serveDemo } from "./helpers.js";

interface ChatResponse {
  choices: {
    message: { content: string };
    logprobs: {
      content: { token: string; logprob: number; top_logprobs: { token: string; logprob: number }[] }[];
    };
    monitor?: ({ token: string } & Record<string, number | string>)[];
  }[];
  steering: null | {
    source: string;
    positions: string;
    vectors: { name: string; scale: number; layers: number[] }[];
  };
}

describe("serve: steering equals the library's", () => {
  let s: Served;
  before(async () => {
    s = await serveDemo();
  });
  after(async () => s.close());
  const messages = [{ role: "user", content: CHAT_PROMPT }];
  const N = 10;

  async function chat(extra: object, base = s.server.url): Promise<ChatResponse> {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "chat",
        messages,
        temperature: 0,
        max_tokens: N,
        logprobs: true,
        top_logprobs: 5,
        ...extra,
      }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body as ChatResponse;
  }

  /** The library's steered greedy run and, for each generated token, its log-distribution by full recompute. */
  async function library(coeff: number, layers: number[], positions: string) {
    const tok = s.opened.tokenizer!;
    const p = prepareChat(tok, messages);
    const hooks: HookBinding[] =
      coeff === 0 ? [] : steerCallHooks(tok, p, { vector: s.vector, coeff, layers, positions, nLayers: 4 });
    const r = await generate(s.opened.engine, tok, p.ids, { maxNewTokens: N, hooks });
    const dists = await nextTokenLogprobs(s.opened.engine, [...p.ids, ...r.ids], {
      positions: "all",
      hooks,
      top: 5,
    });
    return { r, dists: dists.slice(p.ids.length - 1) };
  }

  function assertSame(got: ChatResponse, want: Awaited<ReturnType<typeof library>>): void {
    const c = got.choices[0]!;
    assert.equal(c.message.content, want.r.text);
    assert.equal(c.logprobs.content.length, want.r.ids.length);
    c.logprobs.content.forEach((t, i) => {
      const d = want.dists[i]!;
      assert.ok(
        Math.abs(t.logprob - d.logprobs[want.r.ids[i]!]!) < 1e-4,
        `token ${i}: ${t.logprob} vs ${d.logprobs[want.r.ids[i]!]}`,
      );
      t.top_logprobs.forEach((x, k) => {
        assert.ok(Math.abs(x.logprob - d.top[k]!.logprob) < 1e-4);
      });
    });
  }

  test("each position mode: tokens and logprobs equal the library's; steering changes them", async () => {
    const plain = await library(0, [], "all");
    for (const positions of ["all", "prompt", "generated"]) {
      const want = await library(8, [2, 3], positions);
      const got = await chat({
        steering: { vectors: [{ name: "refusal", scale: 8 }], layers: [2, 3], positions },
      });
      assertSame(got, want);
      assert.deepEqual(got.steering, {
        source: "request",
        positions,
        norm_guard: false,
        vectors: [{ name: "refusal", scale: 8, layers: [2, 3], operator: "add", kind: "unit" }],
      });
      // The steered distribution differs from the unsteered one (so this test can tell them apart).
      const moved = want.dists.some(
        (d, i) =>
          i < plain.dists.length &&
          d.logprobs.some((x, v) => Math.abs(x - plain.dists[i]!.logprobs[v]!) > 1e-2),
      );
      assert.ok(moved, `steering at ${positions} moved nothing`);
    }
  });

  test("control_vectors (llama.cpp GGUF, layer_range), vllm_xargs.steer and inline data agree", async () => {
    const want = await library(-6, [2, 3], "all");
    const forms = [
      { steering: { vectors: [{ name: "refusal", scale: -6 }], layers: [-2, -1] } },
      { control_vectors: [{ path: "refusal-cv.gguf", scale: -6, layer_range: [2, 3] }] },
      { control_vectors: [{ id: "refusal-cv", scale: -6, layer_range: [2, 3] }] },
      {
        vllm_xargs: { steer: JSON.stringify({ vectors: [{ name: "refusal", scale: -6, layers: [2, 3] }] }) },
      },
      {
        steering: {
          vectors: [{ data: [2, 3].map((l) => [...s.vector.directions.get(l)!]), layers: [2, 3], scale: -6 }],
        },
      },
    ];
    for (const f of forms) assertSame(await chat(f), want);
  });

  test("false is unsteered; absent takes the server default; the echo says which", async () => {
    const plain = await library(0, [], "all");
    const app = createApp({
      opened: s.opened,
      vectorsDir: s.vectorsDir,
      defaultSteering: { vectors: [{ name: "refusal", scale: 8 }] },
    });
    const ask = async (extra: object) => {
      const res = await app.request("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "chat",
          messages,
          temperature: 0,
          max_tokens: N,
          logprobs: true,
          top_logprobs: 5,
          ...extra,
        }),
      });
      assert.equal(res.status, 200);
      return (await res.json()) as ChatResponse;
    };
    const byDefault = await ask({});
    assert.equal(byDefault.steering!.source, "default");
    // Without layers, a vector steers its suggested layers (else all it has), as the CLI does.
    const layers = s.vector.suggestedLayers.length ? s.vector.suggestedLayers : [1, 2, 3];
    assert.deepEqual(byDefault.steering!.vectors[0]!.layers, layers);
    assertSame(byDefault, await library(8, layers, "all"));
    const off = await ask({ steering: false });
    assert.equal(off.steering, null);
    assertSame(off, plain);
    assertSame(await chat({}), plain); // the test server has no default
  });

  test("monitor: per-token projections equal the library's reading at the position that chose each token", async () => {
    const want = await library(8, [2, 3], "all");
    const got = await chat({
      steering: { vectors: [{ name: "refusal", scale: 8 }], layers: [2, 3] },
      monitor: { vector: "refusal", layers: [1, 3] },
    });
    const mon = got.choices[0]!.monitor!;
    assert.equal(mon.length, want.r.ids.length);
    // Oracle: one uncached forward over prompt + generated tokens, steered the same, reading resid_post.
    const tok = s.opened.tokenizer!;
    const p = prepareChat(tok, messages);
    const seq = [...p.ids, ...want.r.ids];
    const read = new Map<number, Float32Array>();
    const hooks = [
      ...steerCallHooks(tok, p, { vector: s.vector, coeff: 8, layers: [2, 3], positions: "all", nLayers: 4 }),
      ...[1, 3].map((layer) => ({
        point: { layer, site: "resid_post" as const },
        fn: (ctx: { hidden: Float32Array }) => void read.set(layer, Float32Array.from(ctx.hidden)),
      })),
    ];
    await s.opened.engine.forward({ ids: [seq] }, { hooks, logits: "none" });
    const D = 96;
    mon.forEach((m, i) => {
      for (const layer of [1, 3]) {
        const u = s.vector.directions.get(layer)!;
        const t = p.ids.length - 1 + i;
        let dot = 0;
        for (let j = 0; j < D; j++) dot += read.get(layer)![t * D + j]! * u[j]!;
        assert.ok(
          Math.abs((m[String(layer)] as number) - dot) < 1e-3,
          `token ${i} layer ${layer}: ${m[String(layer)]} vs ${dot}`,
        );
      }
    });
  });
});
