/**
 * `steerlab serve` as a user runs it: --help names the flags; the process binds loopback, requires the key,
 * answers, and exits cleanly on SIGTERM; a bad --steering default fails the start with a clear message.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CLI, ROOT, steerlab, steerlabFails } from "../helpers/cli.js";
import { DEMO_CHAT } from "../serve/helpers.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-serve-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const model = DEMO_CHAT;

test("serve --help names its flags", async () => {
  const help = await steerlab(ROOT, "serve", "--help");
  for (const flag of [
    "--model",
    "--vectors",
    "--host",
    "--port",
    "--api-key",
    "--parallel",
    "--threads",
    "--runs",
    "--steering",
  ]) {
    assert.ok(help.includes(flag), flag);
  }
});

test("serve binds 127.0.0.1, requires the key, answers, and stops on SIGTERM", async () => {
  const keyFile = join(dir, "key");
  writeFileSync(keyFile, "sk-cli\n");
  const child = spawn(
    process.execPath,
    [...CLI, "serve", "-m", model, "--port", "0", "--api-key-file", keyFile, "--threads", "1"],
    {
      cwd: ROOT,
    },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let err = "";
      child.stderr.on("data", (b: Buffer) => {
        err += b.toString();
        const m = /on (http:\/\/[^\s]+) /.exec(err);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(`${url}/v1/models`)).status, 401);
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-cli", "content-type": "application/json" },
      body: JSON.stringify({ prompt: "User: Hi\nAssistant:", max_tokens: 4, temperature: 0 }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { object: string }).object, "text_completion");
    const code = await new Promise<number | null>((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGTERM");
    });
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});

test("a bad default --steering fails the start with a clear error", async () => {
  const r = await steerlabFails(
    ROOT,
    "serve",
    "-m",
    model,
    "--port",
    "0",
    "--steering",
    '{"vectors":[{"name":"nope","scale":1}]}',
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no vector named "nope"/);
});

test("start-up mistakes end in one clear line: bad port, taken port, a file as --vectors, a missing key file", async () => {
  const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at /, stderr);
  const bad = await steerlabFails(ROOT, "serve", "-m", model, "--port", "99999");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--port must be an integer in \[0, 65535\]/);
  noStack(bad.stderr);
  const notDir = join(dir, "not-a-dir");
  writeFileSync(notDir, "x");
  const vec = await steerlabFails(ROOT, "serve", "-m", model, "--port", "0", "--vectors", notDir);
  assert.match(vec.stderr, /vector library \(--vectors\) is not a directory/);
  noStack(vec.stderr);
  const key = await steerlabFails(
    ROOT,
    "serve",
    "-m",
    model,
    "--port",
    "0",
    "--api-key-file",
    join(dir, "none"),
  );
  assert.match(key.stderr, /API key file/);
  noStack(key.stderr);
  // A port another process holds.
  const { createServer } = await import("node:net");
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, "127.0.0.1", () => r()));
  const port = (holder.address() as { port: number }).port;
  try {
    const taken = await steerlabFails(ROOT, "serve", "-m", model, "--port", String(port), "--threads", "1");
    assert.equal(taken.code, 1);
    assert.match(
      taken.stderr,
      /cannot listen on 127\.0\.0\.1:\d+: the port is already in use \(EADDRINUSE\)/,
    );
    noStack(taken.stderr);
  } finally {
    holder.close();
  }
});
