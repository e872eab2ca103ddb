/**
 * The API contract through the official `openai` npm client: models, chat and completions (plain, streamed,
 * with logprobs, echo, stop strings, seeds, usage) and errors, checked against the library's own generation.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { generate } from "../../src/model/generate.js";
import { nextTokenLogprobs } from "../../src/model/logprobs.js";
import { prepareChat, preparePrompt } from "../../src/steer/steer-call.js";
import { CHAT_PROMPT, type Served, serveDemo } from "./helpers.js";

describe("serve: OpenAI client contract", () => {
  let s: Served;
  let client: OpenAI;
  before(async () => {
    s = await serveDemo({ apiKey: "sk-test-key" });
    client = new OpenAI({ baseURL: `${s.server.url}/v1`, apiKey: "sk-test-key", maxRetries: 0 });
  });
  after(async () => s.close());
  const tok = () => s.opened.tokenizer!;
  const messages = [{ role: "user" as const, content: CHAT_PROMPT }];

  test("models.list names the served model", async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ["chat"],
    );
  });

  test("chat: greedy text equals the library's, with logprobs and usage", async () => {
    const r = await client.chat.completions.create({
      model: "chat",
      messages,
      temperature: 0,
      max_tokens: 12,
      logprobs: true,
      top_logprobs: 3,
    });
    const p = prepareChat(tok(), messages);
    const lib = await generate(s.opened.engine, tok(), p.ids, { maxNewTokens: 12 });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]!.message.content, lib.text);
    assert.equal(r.choices[0]!.finish_reason, lib.finishReason === "length" ? "length" : "stop");
    assert.deepEqual(r.usage, {
      prompt_tokens: p.ids.length,
      completion_tokens: lib.ids.length,
      total_tokens: p.ids.length + lib.ids.length,
    });
    const content = r.choices[0]!.logprobs!.content!;
    assert.equal(content.length, lib.ids.length);
    // Each token's logprob is the library's (full recompute, no cache) at that position.
    const dists = await nextTokenLogprobs(s.opened.engine, [...p.ids, ...lib.ids], {
      positions: "all",
      top: 3,
    });
    content.forEach((c, i) => {
      const d = dists[p.ids.length - 1 + i]!;
      const id = lib.ids[i]!;
      assert.equal(c.token, tok().decode([id], { skipSpecialTokens: false }));
      assert.ok(Math.abs(c.logprob - d.logprobs[id]!) < 1e-4, `${c.logprob} vs ${d.logprobs[id]}`);
      assert.deepEqual(c.bytes, [...Buffer.from(c.token, "utf8")]);
      assert.equal(c.top_logprobs.length, 3);
      c.top_logprobs.forEach((t, k) => {
        assert.equal(t.token, tok().decode([d.top[k]!.id], { skipSpecialTokens: false }));
        assert.ok(Math.abs(t.logprob - d.top[k]!.logprob) < 1e-4);
      });
    });
  });

  test("chat streaming: chunks add up to the same text, end with a finish reason, usage and [DONE]", async () => {
    const plain = await client.chat.completions.create({
      model: "chat",
      messages,
      temperature: 0,
      max_tokens: 10,
    });
    const stream = await client.chat.completions.create({
      model: "chat",
      messages,
      temperature: 0,
      max_tokens: 10,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    const reasons: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    let first = true;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      if (first) assert.equal(chunk.choices[0]!.delta.role, "assistant");
      first = false;
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta.content ?? "";
        reasons.push(c.finish_reason);
      }
    }
    assert.equal(text, plain.choices[0]!.message.content);
    assert.equal(reasons.at(-1), plain.choices[0]!.finish_reason);
    assert.equal(reasons.filter((r) => r !== null).length, 1);
    assert.deepEqual(usage, plain.usage);
  });

  test("raw SSE ends with data: [DONE]", async () => {
    const res = await fetch(`${s.server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test-key" },
      body: JSON.stringify({ model: "chat", messages, max_tokens: 3, stream: true, temperature: 0 }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const body = await res.text();
    const events = body.split("\n\n").filter((e) => e.trim());
    assert.equal(events.at(-1), "data: [DONE]");
  });

  test("completions: echo + logprobs with max_tokens 0 scores the prompt as the library does", async () => {
    const prompt = "User: Help me clean the bridge.\nAssistant: Sure";
    const r = await client.completions.create({
      model: "chat",
      prompt,
      max_tokens: 0,
      echo: true,
      logprobs: 2,
    });
    const ids = preparePrompt(tok(), prompt).ids;
    const lp = r.choices[0]!.logprobs!;
    assert.equal(r.choices[0]!.text, prompt);
    assert.equal(lp.tokens!.length, ids.length);
    assert.equal(lp.token_logprobs![0], null);
    const dists = await nextTokenLogprobs(s.opened.engine, ids, { positions: "all", top: 2 });
    for (let i = 1; i < ids.length; i++) {
      assert.ok(Math.abs(lp.token_logprobs![i]! - dists[i - 1]!.logprobs[ids[i]!]!) < 1e-4);
      assert.equal(Object.keys(lp.top_logprobs![i]!).length <= 2, true);
    }
    // Offsets point at each token's text in the echoed prompt.
    for (let i = 1; i < ids.length; i++) {
      const t = lp.tokens![i]!;
      if (!t.includes("\ufffd"))
        assert.equal(prompt.slice(lp.text_offset![i], lp.text_offset![i]! + t.length), t);
    }
    assert.equal(r.usage!.completion_tokens, 0);
  });

  test("completions: token-id prompts, stop strings, seeds", async () => {
    const prompt = "User: How do I fix the bridge?\nAssistant:";
    const ids = preparePrompt(tok(), prompt).ids;
    const greedy = await client.completions.create({ model: "chat", prompt, max_tokens: 16, temperature: 0 });
    const byIds = await client.completions.create({
      model: "chat",
      prompt: ids,
      max_tokens: 16,
      temperature: 0,
    });
    assert.equal(byIds.choices[0]!.text, greedy.choices[0]!.text);
    const text = greedy.choices[0]!.text;
    assert.ok(text.length > 6, text);
    const stop = text.slice(3, 6);
    const stopped = await client.completions.create({
      model: "chat",
      prompt,
      max_tokens: 16,
      temperature: 0,
      stop: [stop],
    });
    assert.equal(stopped.choices[0]!.text, text.slice(0, text.indexOf(stop)));
    assert.equal(stopped.choices[0]!.finish_reason, "stop");
    // Sampling: the same seed gives the library's sampled text; finish_reason "length" when the budget ends it.
    const opts = { model: "chat", prompt, max_tokens: 8, temperature: 1.3, top_p: 0.95, seed: 7 };
    const a = await client.completions.create(opts);
    const b = await client.completions.create(opts);
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
    const lib = await generate(s.opened.engine, tok(), ids, {
      maxNewTokens: 8,
      temperature: 1.3,
      topP: 0.95,
      seed: 7,
    });
    assert.equal(a.choices[0]!.text, lib.text);
  });

  test("several choices: a list of prompts scores each as the library does; n samples with seed + i", async () => {
    const prompts = [
      "User: Help me clean the bridge.\nAssistant: Sure",
      "User: How do I steal the bridge?\nAssistant: I",
    ];
    const r = await client.completions.create({
      model: "chat",
      prompt: prompts,
      max_tokens: 0,
      echo: true,
      logprobs: 0,
    });
    assert.deepEqual(
      r.choices.map((c) => [c.index, c.text]),
      prompts.map((p, i) => [i, p]),
    );
    for (const [i, p] of prompts.entries()) {
      const ids = preparePrompt(tok(), p).ids;
      const dists = await nextTokenLogprobs(s.opened.engine, ids, { positions: "all", top: 1 });
      const lps = r.choices[i]!.logprobs!.token_logprobs!;
      assert.equal(lps.length, ids.length);
      for (let k = 1; k < ids.length; k++)
        assert.ok(Math.abs(lps[k]! - dists[k - 1]!.logprobs[ids[k]!]!) < 1e-4);
    }
    assert.equal(
      r.usage!.prompt_tokens,
      prompts.reduce((k, p) => k + preparePrompt(tok(), p).ids.length, 0),
    );

    const opts = { model: "chat", messages, max_tokens: 8, temperature: 1.2 };
    const three = await client.chat.completions.create({ ...opts, n: 3, seed: 5 });
    assert.equal(three.choices.length, 3);
    for (const [i, c] of three.choices.entries()) {
      assert.equal(c.index, i);
      const solo = await client.chat.completions.create({ ...opts, seed: 5 + i });
      assert.equal(c.message.content, solo.choices[0]!.message.content);
    }
    assert.ok(new Set(three.choices.map((c) => c.message.content)).size > 1);
    // Streamed, the choices arrive interleaved and add up to the same texts.
    const stream = await client.chat.completions.create({ ...opts, n: 3, seed: 5, stream: true });
    const texts = ["", "", ""];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? "";
    assert.deepEqual(
      texts,
      three.choices.map((c) => c.message.content),
    );
  });

  test("errors come in OpenAI's shape through the client", async () => {
    await assert.rejects(
      client.chat.completions.create({ model: "chat", messages: [], max_tokens: 3 }),
      (e: unknown) =>
        e instanceof OpenAI.BadRequestError && e.param === "messages" && /messages/.test(e.message),
    );
    await assert.rejects(
      client.chat.completions.create({ model: "chat", messages, top_logprobs: 21, logprobs: true }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "top_logprobs",
    );
    const wrongKey = new OpenAI({ baseURL: `${s.server.url}/v1`, apiKey: "nope", maxRetries: 0 });
    await assert.rejects(
      wrongKey.models.list(),
      (e: unknown) => e instanceof OpenAI.AuthenticationError && e.code === "invalid_api_key",
    );
    const res = await fetch(`${s.server.url}/v1/models`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { type: string } }).error.type, "invalid_request_error");
  });
});
