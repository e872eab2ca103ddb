/**
 * The queue: concurrent requests with mixed steering, sampling and stops are batched into shared forwards and
 * each response equals its solo run (no cross-talk); a client that goes away (streamed or not) stops its
 * generation and frees its slot for the next request.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { HookBinding } from "../../src/model/engine.js";
import { Scheduler } from "../../src/serve/scheduler.js";
import { type RunningServer, startServer } from "../../src/serve/server.js";
import { makeVector } from "../../src/steer/vector.js";
import { encodeVector } from "../../src/steer/vector-file.js";
import { type Served, serveDemo } from "./helpers.js";

interface Stats {
  running: number;
  waiting: number;
  batches: number;
  maxBatch: number;
  aborted: number;
  generatedTokens: number;
}

async function post(url: string, path: string, body: object, signal?: AbortSignal): Promise<Response> {
  return fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

async function stats(url: string): Promise<Stats> {
  return ((await (await fetch(`${url}/health`)).json()) as { queue: Stats }).queue;
}

async function idle(url: string): Promise<Stats> {
  for (let i = 0; i < 200; i++) {
    const s = await stats(url);
    if (s.running === 0 && s.waiting === 0) return s;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the server did not become idle");
}

/** Eight requests that differ in everything a row may differ in. */
const REQUESTS: { path: string; body: object }[] = [
  ["How do I steal the bridge?", false, 12],
  ["How do I steal the bridge?", { vectors: [{ name: "refusal", scale: 8 }], layers: [2, 3] }, 10],
  ["How do I steal the bridge?", { vectors: [{ name: "refusal", scale: -8 }], positions: "generated" }, 9],
  ["Help me clean the bridge.", { vectors: [{ name: "refusal", scale: 6 }], positions: "prompt" }, 11],
].flatMap(([content, steering, max]) => [
  {
    path: "/v1/chat/completions",
    body: {
      messages: [{ role: "user", content }],
      steering,
      max_tokens: max,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    },
  },
  {
    path: "/v1/completions",
    body: {
      prompt: `User: ${content}\nAssistant:`,
      steering,
      max_tokens: (max as number) + 3,
      temperature: 0.9,
      seed: (max as number) * 13,
      stop: ["."],
      logprobs: 1,
    },
  },
]);

/** What must be equal between a solo and a batched run: text, finish reason, logprobs (to float noise). */
function outcome(r: Record<string, unknown>): { text: string; finish: string; lps: number[] } {
  const c = (r.choices as Record<string, unknown>[])[0]!;
  const lp = c.logprobs as { content?: { logprob: number }[]; token_logprobs?: number[] };
  return {
    text: (c.message as { content: string } | undefined)?.content ?? (c.text as string),
    finish: c.finish_reason as string,
    lps: lp.content ? lp.content.map((t) => t.logprob) : lp.token_logprobs!,
  };
}

describe("serve: batching, cross-talk and disconnects", () => {
  let s: Served;
  before(async () => {
    s = await serveDemo({ parallel: 4 });
  });
  after(async () => s.close());

  test("concurrent mixed requests equal their solo runs and share batches", async () => {
    const solo: ReturnType<typeof outcome>[] = [];
    for (const r of REQUESTS) {
      const res = await post(s.server.url, r.path, r.body);
      assert.equal(res.status, 200);
      solo.push(outcome((await res.json()) as Record<string, unknown>));
    }
    const before = await stats(s.server.url);
    assert.equal(before.maxBatch, 1);
    const together = await Promise.all(
      REQUESTS.map(async (r) =>
        outcome((await (await post(s.server.url, r.path, r.body)).json()) as Record<string, unknown>),
      ),
    );
    together.forEach((got, i) => {
      const want = solo[i]!;
      assert.equal(got.text, want.text, `request ${i}`);
      assert.equal(got.finish, want.finish, `request ${i}`);
      assert.equal(got.lps.length, want.lps.length);
      got.lps.forEach((x, k) => {
        assert.ok(Math.abs(x - want.lps[k]!) < 1e-4, `request ${i} token ${k}: ${x} vs ${want.lps[k]}`);
      });
    });
    // The solo texts differ from each other (steering and sampling did something: a row that took
    // another row's steering or sampler would show), and batches formed.
    const signature = (o: ReturnType<typeof outcome>) => o.text + o.lps.map((x) => x.toFixed(3)).join();
    assert.equal(new Set(solo.map(signature)).size, REQUESTS.length);
    assert.ok(new Set(solo.map((o) => o.text)).size >= 4);
    const after = await stats(s.server.url);
    assert.equal(after.maxBatch, 4);
    assert.ok(after.batches - before.batches <= 4);
  });

  test("a row that fails in the forward fails alone; the rows batched with it are served", async () => {
    const sched = new Scheduler(s.opened.engine, s.opened.tokenizer!, 4, 8);
    const run = (hooks: HookBinding[]) =>
      new Promise<{ ids: number[]; error?: unknown }>((resolve) => {
        const ids: number[] = [];
        sched.submit({
          row: { prompt: [1, 40, 41, 42], maxNewTokens: 6, stopTokens: [], hooks },
          onToken: (e) => ids.push(e.tokenId),
          onEnd: (error) => resolve({ ids, error }),
          signal: new AbortController().signal,
        });
      });
    const solo = await run([]);
    const boom: HookBinding = {
      point: { layer: 1, site: "resid_post" },
      fn: () => {
        throw new Error("boom");
      },
    };
    const [a, b, c] = await Promise.all([run([]), run([boom]), run([])]);
    assert.match(String(b.error), /boom/);
    assert.deepEqual(a, { ids: solo.ids, error: undefined });
    assert.deepEqual(c, { ids: solo.ids, error: undefined });
    assert.equal(solo.ids.length, 6);
  });

  test("a library file that does not fit the model (copied in by hand) is a 400 before it reaches a batch", async () => {
    const narrow = makeVector(new Map([[1, new Float32Array(64).fill(0.05)]]));
    writeFileSync(join(s.vectorsDir, "narrow.safetensors"), encodeVector(narrow));
    const res = await post(s.server.url, "/v1/chat/completions", {
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
      steering: { vectors: [{ name: "narrow", scale: 1 }] },
    });
    assert.equal(res.status, 400);
    const e = ((await res.json()) as { error: { message: string; param: string } }).error;
    assert.equal(e.param, "steering.vectors[0].name");
    assert.match(e.message, /hidden size: vector 64, model 96/);
  });

  describe("disconnects free the slot", () => {
    let one: RunningServer;
    before(async () => {
      one = await startServer({ opened: s.opened, vectorsDir: s.vectorsDir, port: 0, parallel: 1 });
    });
    after(async () => one.close());
    const long = {
      prompt: "User: Tell me a story.\nAssistant:",
      max_tokens: 100,
      ignore_eos: true,
      temperature: 0,
    };

    test("ignore_eos runs a long request to its budget", async () => {
      const r = (await (await post(one.url, "/v1/completions", long)).json()) as {
        usage: { completion_tokens: number };
      };
      assert.equal(r.usage.completion_tokens, 100);
    });

    test("a dropped stream stops generating; the next request runs", async () => {
      const s0 = await idle(one.url);
      const ac = new AbortController();
      const res = await post(one.url, "/v1/completions", { ...long, stream: true }, ac.signal);
      const reader = res.body!.getReader();
      let chunks = 0;
      while (chunks < 3) {
        const { value } = await reader.read();
        chunks += (new TextDecoder().decode(value).match(/^data: /gm) ?? []).length;
      }
      ac.abort();
      const next = (await (await post(one.url, "/v1/completions", { ...long, max_tokens: 5 })).json()) as {
        usage: { completion_tokens: number };
      };
      assert.equal(next.usage.completion_tokens, 5);
      const s1 = await idle(one.url);
      assert.equal(s1.aborted - s0.aborted, 1);
      // The dropped request stopped well before its 100 tokens.
      assert.ok(
        s1.generatedTokens - s0.generatedTokens < 5 + 50,
        `${s1.generatedTokens - s0.generatedTokens} tokens`,
      );
    });

    test("a dropped non-streamed request stops generating too", async () => {
      const s0 = await idle(one.url);
      const ac = new AbortController();
      const pending = post(one.url, "/v1/completions", long, ac.signal).catch((e: Error) => e);
      for (let i = 0; i < 100 && (await stats(one.url)).generatedTokens === s0.generatedTokens; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      ac.abort();
      assert.ok((await pending) instanceof Error);
      const s1 = await idle(one.url);
      assert.equal(s1.aborted - s0.aborted, 1);
      assert.ok(
        s1.generatedTokens - s0.generatedTokens < 50,
        `${s1.generatedTokens - s0.generatedTokens} tokens`,
      );
    });
  });
});
