/** Queue addresses that cannot work fail at once with a clear error instead of retrying forever. */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { queueSweep } from "../../src/distrib/coordinator.js";
import { queueStatus } from "../../src/distrib/status.js";
import { startSweepWorker } from "../../src/distrib/worker.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("no Redis at the address: coordinator, worker and status say so", async () => {
  const url = `redis://127.0.0.1:${await closedPort()}`;
  const config = parseSweepConfig(
    { model: "m", vectors: ["random:1"], coeffs: "0", tasks: [{ kind: "mcq", data: "x.csv" }] },
    "/nonexistent",
  );
  const t0 = Date.now();
  for (const call of [
    () => queueStatus({ url }),
    () => startSweepWorker({ url }),
    () => queueSweep(config, "/nonexistent/run", { url }),
  ])
    await assert.rejects(call, (e: Error & { code?: string }) => {
      assert.equal(e.code, "not_found");
      assert.match(e.message, /cannot reach Redis: connect ECONNREFUSED .*hint: start redis-server/);
      return true;
    });
  assert.ok(Date.now() - t0 < 15_000);
});

test("an address that is not redis:// is refused before connecting", async () => {
  await assert.rejects(
    queueStatus({ url: "http://127.0.0.1:6379" }),
    /bad queue address.*expected: redis:\/\/host:port/,
  );
  await assert.rejects(queueStatus({ url: "not a url" }), /bad queue address/);
});
