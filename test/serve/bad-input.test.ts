/**
 * Hostile and wrong input: every case gets a 4xx in OpenAI's error shape with a message that names the problem,
 * nothing is written outside the vector directory, and the server keeps serving. The vector library's own
 * routes (upload raw or multipart, list, use, delete) are checked here too.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Hono } from "hono";
import { createApp } from "../../src/serve/app.js";
import { makeVector } from "../../src/steer/vector.js";
import { encodeVector } from "../../src/steer/vector-file.js";
import { openDemo } from "./helpers.js";

type Demo = Awaited<ReturnType<typeof openDemo>>;
interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

describe("serve: bad input gets a clear 4xx and the server keeps serving", () => {
  let d: Demo;
  let app: Hono;
  before(async () => {
    d = await openDemo();
    app = createApp({
      opened: d.opened,
      vectorsDir: d.vectorsDir,
      bodyLimit: 64 * 1024,
      maxQueue: 2,
      parallel: 1,
    });
  });
  after(async () => d.opened.engine.dispose());

  const chat = (body: object | string, path = "/v1/chat/completions") =>
    app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const messages = [{ role: "user", content: "Help me clean the bridge." }];

  async function expectError(
    res: Response | Promise<Response>,
    status: number,
    param: string | null,
    message: RegExp,
  ) {
    const r = await res;
    const body = (await r.json()) as ErrorBody;
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(typeof body.error.message, "string");
    assert.equal(typeof body.error.type, "string");
    assert.ok("code" in body.error && "param" in body.error);
    if (param !== null) assert.equal(body.error.param, param);
    assert.match(body.error.message, message);
    return body;
  }

  async function stillServes() {
    const r = await chat({ messages, max_tokens: 3, temperature: 0 });
    assert.equal(r.status, 200);
  }

  test("bodies: oversized, malformed JSON, NaN literals, wrong types", async () => {
    await expectError(chat({ messages, pad: "x".repeat(100_000) }), 413, null, /larger than 65536 bytes/);
    await expectError(chat('{"messages": ['), 400, null, /not valid JSON/);
    await expectError(chat('{"messages": [], "temperature": NaN}'), 400, null, /not valid JSON/);
    await expectError(chat({ messages: "hi" }), 400, "messages", /array/i);
    await expectError(chat({ messages, temperature: 3 }), 400, "temperature", /2/);
    await expectError(chat({ messages, n: 17 }), 400, "n", /16/);
    await expectError(chat({ prompt: Array(17).fill("a"), n: 1 }, "/v1/completions"), 400, "prompt", /16/);
    await expectError(
      chat({ prompt: ["a", "b", "c"], n: 6 }, "/v1/completions"),
      400,
      "n",
      /at most 16 choices/,
    );
    await expectError(chat({ prompt: "x", max_tokens: 0 }, "/v1/completions"), 400, "max_tokens", /echo/);
    // Fields that would change the answer but are not implemented are refused, not silently dropped.
    await expectError(chat({ messages, logit_bias: { "5": -100 } }), 400, "logit_bias", /not supported/);
    await expectError(
      chat({ messages, response_format: { type: "json_object" } }),
      400,
      "response_format",
      /not supported/,
    );
    await expectError(chat({ prompt: "x", suffix: "y" }, "/v1/completions"), 400, "suffix", /not supported/);
    const neutral = await chat({
      messages,
      max_tokens: 2,
      logit_bias: {},
      response_format: { type: "text" },
      tools: [],
    });
    assert.equal(neutral.status, 200);
    await expectError(chat({ prompt: [99999] }, "/v1/completions"), 400, "prompt", /vocabulary/);
    const long = "word ".repeat(400);
    await expectError(chat({ messages: [{ role: "user", content: long }] }), 400, "messages", /tokens/);
    await stillServes();
  });

  test("stop strings are bounded", async () => {
    const many = Array.from({ length: 5000 }, (_, i) => `stop${i}`);
    await expectError(chat({ messages, stop: many }), 400, "stop", /4/);
    await expectError(chat({ messages, stop: "s".repeat(10_000) }), 400, "stop", /128/);
    await expectError(chat({ messages, stop: [""] }), 400, "stop.0", /1/);
    await stillServes();
  });

  test("steering: unknown names, wrong shapes, bad layers, two forms, traversal in control vector paths", async () => {
    await expectError(
      chat({ messages, steering: { vectors: [{ name: "nope", scale: 1 }] } }),
      400,
      "steering.vectors[0].name",
      /no vector named "nope"/,
    );
    await expectError(
      chat({ messages, steering: { vectors: [{ data: [Array(95).fill(0.1)], layers: [1], scale: 1 }] } }),
      400,
      "steering.vectors[0].data[0]",
      /expected: 96/,
    );
    // JSON has no NaN, but 1e400 parses as Infinity.
    await expectError(
      chat(
        `{"messages":[{"role":"user","content":"x"}],"steering":{"vectors":[{"data":[[1e400]],"layers":[1],"scale":1}]}}`,
      ),
      400,
      "steering.vectors.0.data.0.0",
      /finite/,
    );
    await expectError(
      chat(
        `{"messages":[{"role":"user","content":"x"}],"steering":{"vectors":[{"name":"refusal","scale":-1e999}]}}`,
      ),
      400,
      "steering.vectors.0.scale",
      /finite/,
    );
    await expectError(
      chat({ messages, steering: { vectors: [{ data: [Array(96).fill(0.1)], scale: 1 }] } }),
      400,
      "steering.vectors[0].data",
      /1 rows/,
    );
    await expectError(
      chat({ messages, steering: { vectors: [{ name: "refusal", scale: 1 }], layers: [9] } }),
      400,
      "steering.layers",
      /layer 9 out of range/,
    );
    await expectError(
      chat({ messages, steering: { vectors: [{ name: "refusal", scale: 1 }], layers: [0] } }),
      400,
      "steering.layers",
      /no direction for layer 0/,
    );
    await expectError(
      chat({ messages, steering: { vectors: [{ name: "refusal", scale: 1 }], positions: "after" } }),
      400,
      "steering.marker",
      /marker/,
    );
    await expectError(
      chat({ messages, steering: { vectors: [{ name: "refusal", scale: 1 }], positions: "middle" } }),
      400,
      "steering.positions",
      /positions/,
    );
    await expectError(
      chat({ messages, steering: false, control_vectors: [{ id: "refusal", scale: 1 }] }),
      400,
      "steering",
      /one form/,
    );
    await expectError(
      chat({ messages, control_vectors: [{ path: "../../../../etc/passwd", scale: 1 }] }),
      400,
      "control_vectors[0].path",
      /a control vector path must be a file name in the server's vector library; .*expected: a file name such as "passwd"/,
    );
    await expectError(
      chat({ messages, vllm_xargs: { steer: "{not json" } }),
      400,
      "vllm_xargs.steer",
      /JSON/,
    );
    await expectError(
      chat({ messages, monitor: { vector: "refusal", layers: [0] } }),
      400,
      "monitor.layers",
      /layer 0/,
    );
    await stillServes();
  });

  test("the vector library: upload (raw GGUF, multipart), list, use, delete; hostile uploads refused", async () => {
    const gguf = readFileSync(join(d.vectorsDir, "refusal-cv.gguf"));
    const up = await app.request("/v1/steering/vectors?name=uploaded", { method: "POST", body: gguf });
    assert.equal(up.status, 201);
    const info = (await up.json()) as {
      name: string;
      format: string;
      layers: number[];
      fits: boolean;
      norms: number[];
    };
    assert.deepEqual([info.name, info.format, info.layers, info.fits], ["uploaded", "gguf", [1, 2, 3], true]);
    for (const n of info.norms) assert.ok(Math.abs(n - 1) < 1e-5); // unit reading vectors
    const dup = await expectError(
      app.request("/v1/steering/vectors?name=uploaded", { method: "POST", body: gguf }),
      409,
      "name",
      /^a vector named "uploaded" exists; pick another name, delete it first, or pass overwrite=true$/,
    );
    assert.equal(dup.error.code, "vector_exists");

    const form = new FormData();
    const st = readFileSync(join(d.vectorsDir, "refusal.safetensors"));
    form.set("file", new File([st], "from-form.safetensors"));
    const mp = await app.request("/v1/steering/vectors", { method: "POST", body: form });
    assert.equal(mp.status, 201, await mp.clone().text());
    assert.equal(((await mp.json()) as { name: string }).name, "from-form");

    const one = (await (await app.request("/v1/steering/vectors/refusal")).json()) as {
      layers: number[];
      site: string;
    };
    assert.deepEqual([one.layers, one.site], [[1, 2, 3], "resid_post"]);
    await expectError(app.request("/v1/steering/vectors/nope"), 404, "name", /no vector named "nope"/);
    await expectError(app.request("/v1/steering/vectors/..%2Fx"), 400, "name", /bad vector name/);
    const list = (await (await app.request("/v1/steering/vectors")).json()) as { data: { name: string }[] };
    assert.deepEqual(
      list.data.map((v) => v.name),
      ["from-form", "refusal", "refusal-cv", "uploaded"],
    );
    const use = await chat({ messages, max_tokens: 3, control_vectors: [{ id: "uploaded", scale: 2 }] });
    assert.equal(use.status, 200);
    assert.equal(
      ((await use.json()) as { steering: { vectors: { name: string }[] } }).steering.vectors[0]!.name,
      "uploaded",
    );

    const del = await app.request("/v1/steering/vectors/uploaded", { method: "DELETE" });
    assert.deepEqual(await del.json(), { id: "uploaded", object: "steering.vector", deleted: true });
    await expectError(
      app.request("/v1/steering/vectors/uploaded", { method: "DELETE" }),
      404,
      "name",
      /no vector/,
    );
    await expectError(
      chat({ messages, control_vectors: [{ id: "uploaded", scale: 2 }] }),
      400,
      "control_vectors[0].id",
      /no vector named/,
    );

    // Hostile uploads: traversal names, NaN, wrong shape, junk, empty; nothing lands outside the directory.
    const parent = dirname(d.vectorsDir);
    mkdirSync(parent, { recursive: true });
    const beforeParent = readdirSync(parent).sort();
    for (const name of ["../evil", "..", ".hidden", "a/b", "x".repeat(65), "%2e%2e%2fevil"]) {
      await expectError(
        app.request(`/v1/steering/vectors?name=${encodeURIComponent(name)}`, { method: "POST", body: gguf }),
        400,
        "name",
        /name/,
      );
    }
    await expectError(
      app.request("/v1/steering/vectors/..%2F..%2Fetc%2Fpasswd", { method: "DELETE" }),
      400,
      "name",
      /bad vector name/,
    );
    const nan = new Float32Array(96).fill(0.1);
    nan[7] = Number.NaN;
    await expectError(
      app.request("/v1/steering/vectors?name=nan", {
        method: "POST",
        body: encodeVector(makeVector(new Map([[1, nan]]), {}, { allowNonFinite: true })),
      }),
      400,
      null,
      /NaN at index 7.*hint: this server accepts only finite vectors/,
    );
    const narrow = makeVector(new Map([[1, new Float32Array(64).fill(0.1)]]));
    await expectError(
      app.request("/v1/steering/vectors?name=narrow", { method: "POST", body: encodeVector(narrow) }),
      400,
      null,
      /hidden size: vector 64, model 96/,
    );
    await expectError(
      app.request("/v1/steering/vectors?name=junk", { method: "POST", body: new Uint8Array(1000).fill(7) }),
      400,
      null,
      /./,
    );
    await expectError(
      app.request("/v1/steering/vectors?name=empty", { method: "POST", body: "" }),
      400,
      "body",
      /empty/,
    );
    assert.deepEqual(readdirSync(parent).sort(), beforeParent);
    assert.deepEqual(readdirSync(d.vectorsDir).sort(), [
      "from-form.safetensors",
      "refusal-cv.gguf",
      "refusal.safetensors",
    ]);
    await stillServes();
  });

  test("errors name each detail once, the field at fault and what was expected, in the server's terms", async () => {
    const once = (m: string, what: string) =>
      assert.equal(m.split(`${what}: `).length - 1, 1, `${what} once in: ${m}`);
    const nope = await expectError(
      chat({ messages, steering: { vectors: [{ name: "nope", scale: 1 }] } }),
      400,
      "steering.vectors[0].name",
      /^no vector named "nope" in the library; field: steering.vectors\[0\].name; hint: list them/,
    );
    once(nope.error.message, "hint");
    once(nope.error.message, "field");
    const viaXargs = await expectError(
      chat({ messages, vllm_xargs: { steer: { vectors: [{ name: "nope", scale: 1 }] } } }),
      400,
      "vllm_xargs.steer.vectors[0].name",
      /no vector named "nope"/,
    );
    once(viaXargs.error.message, "hint");
    const layer = await expectError(
      chat({ messages, steering: { vectors: [{ name: "refusal", scale: 1 }], layers: [9] } }),
      400,
      "steering.layers",
      /^layer 9 out of range; field: steering.layers; expected: an integer in \[-4, 3\]; got: 9$/,
    );
    once(layer.error.message, "expected");
    // null where inline data belongs: the field and what it expected, not "steering: Invalid input".
    for (const [data, param, expected] of [
      [null, "steering.vectors.0.data", "array"],
      [[null], "steering.vectors.0.data.0", "array"],
      [[[0.5, null]], "steering.vectors.0.data.0.1", "number"],
    ] as const)
      await expectError(
        chat({ messages, steering: { vectors: [{ data, layers: [1], scale: 1 }] } }),
        400,
        param,
        new RegExp(`^${param.replaceAll(".", "\\.")}: Expected ${expected}, received null$`),
      );
    await expectError(
      chat({ messages, vllm_xargs: { steer: { vectors: [{ data: null, layers: [1], scale: 1 }] } } }),
      400,
      "vllm_xargs.steer.vectors.0.data",
      /Expected array, received null/,
    );
    await expectError(
      chat({ messages, logit_bias: { 1: 2 } }),
      400,
      "logit_bias",
      /^logit_bias is not supported by steerlab serve$/,
    );
    // Non-finite or overflowing vectors: the client hears what this server accepts, not a CLI flag.
    const nan = new Float32Array(96).fill(0.1);
    nan[7] = Number.NaN;
    const up = await expectError(
      app.request("/v1/steering/vectors?name=nan", {
        method: "POST",
        body: encodeVector(makeVector(new Map([[1, nan]]), {}, { allowNonFinite: true })),
      }),
      400,
      null,
      /^steering vector has unusable values: tensor direction.1, layer 1: NaN at index 7 \[7\]; file: upload:nan.safetensors; hint: this server accepts only finite vectors/,
    );
    assert.doesNotMatch(up.error.message, /allow-non-finite|allowNonFinite|problems/);
    const big = await expectError(
      chat({ messages, steering: { vectors: [{ data: [Array(96).fill(1e20)], layers: [1], scale: 1 }] } }),
      400,
      "steering.vectors[0].data",
      /overflows float32 when squared.*hint: this server accepts only finite vectors/,
    );
    assert.doesNotMatch(big.error.message, /allow-non-finite|allowNonFinite/);
    await expectError(
      chat({
        messages,
        steering: {
          vectors: [
            { name: "nope2", scale: 1 },
            { name: "refusal", scale: 1e30 },
          ],
        },
      }),
      400,
      "steering.vectors[0].name",
      /nope2/,
    );
    await expectError(
      chat({
        messages,
        steering: {
          vectors: [
            { name: "refusal", scale: 1 },
            { name: "refusal", scale: 1e30 },
          ],
        },
      }),
      400,
      "steering.vectors[1].scale",
      /^steering coefficient too large: the residual stream would overflow float32; field: steering.vectors\[1\].scale/,
    );
    await stillServes();
  });

  test("control_vectors.path is a library file name: its extension counts, folders and ambiguous names are refused", async () => {
    // Only refusal.safetensors and refusal-cv.gguf are in the library: "refusal.gguf" is not "refusal.safetensors".
    await expectError(
      chat({ messages, control_vectors: [{ path: "refusal.gguf", scale: 1 }] }),
      400,
      "control_vectors[0].path",
      /^no vector file "refusal.gguf" in the library/,
    );
    await expectError(
      chat({ messages, control_vectors: [{ path: "/models/refusal-cv.gguf", scale: 1 }] }),
      400,
      "control_vectors[0].path",
      /must be a file name in the server's vector library; .*expected: a file name such as "refusal-cv.gguf".*got: "\/models\/refusal-cv.gguf"/,
    );
    const ok = await chat({
      messages,
      max_tokens: 2,
      control_vectors: [{ path: "refusal-cv.gguf", scale: 1 }],
    });
    assert.equal(ok.status, 200);
    const echo = ((await ok.json()) as { steering: { vectors: { name: string; kind: string }[] } }).steering;
    assert.deepEqual([echo.vectors[0]!.name, echo.vectors[0]!.kind], ["refusal-cv.gguf", "raw"]);
    // Two files of one name, copied in by hand: the bare name is ambiguous; the file name is not.
    copyFileSync(join(d.vectorsDir, "refusal.safetensors"), join(d.vectorsDir, "twin.safetensors"));
    copyFileSync(join(d.vectorsDir, "refusal-cv.gguf"), join(d.vectorsDir, "twin.gguf"));
    try {
      await expectError(
        chat({ messages, control_vectors: [{ id: "twin", scale: 1 }] }),
        400,
        "control_vectors[0].id",
        /^the name "twin" is ambiguous: the library holds twin.safetensors and twin.gguf; .*hint: name the file with control_vectors\[\].path/,
      );
      const twin = await chat({
        messages,
        max_tokens: 2,
        control_vectors: [{ path: "twin.gguf", scale: 1 }],
      });
      assert.equal(twin.status, 200);
    } finally {
      rmSync(join(d.vectorsDir, "twin.safetensors"));
      rmSync(join(d.vectorsDir, "twin.gguf"));
    }
  });

  test("the queue counts requests, not rows: one request with more prompts than --max-queue runs", async () => {
    const tight = createApp({ opened: d.opened, vectorsDir: d.vectorsDir, maxQueue: 1, parallel: 1 });
    const r = await tight.request("/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: ["a", "b", "c", "d"], max_tokens: 2, temperature: 0 }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(((await r.json()) as { choices: unknown[] }).choices.length, 4);
  });

  test("routes: unknown paths are JSON 404s, nothing is served at /lab, a full queue answers 429", async () => {
    await expectError(app.request("/v1/nothing"), 404, null, /no route/);
    await expectError(app.request("/lab"), 404, null, /no route/);
    await expectError(app.request("/../../etc/passwd"), 404, null, /no route/);
    // parallel 1, maxQueue 2: the first runs, two wait, the rest are refused at once.
    const long = {
      prompt: "User: Tell me a story.\nAssistant:",
      max_tokens: 40,
      ignore_eos: true,
      temperature: 0,
    };
    const res = await Promise.all(Array.from({ length: 6 }, () => chat(long, "/v1/completions")));
    const codes = res.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
    const refused = res.find((r) => r.status === 429)!;
    assert.equal(((await refused.json()) as ErrorBody).error.code, "queue_full");
    await stillServes();
  });
});
