/** Run the steerlab CLI as a user would: from dist/ when the tests were compiled (npm test), else from the sources. */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const COMPILED = existsSync(join(ROOT, "src/cli/main.js"));
export const CLI = COMPILED
  ? [join(ROOT, "src/cli/main.js")]
  : ["--import", import.meta.resolve("tsx"), join(ROOT, "src/cli/main.ts")];

export async function steerlab(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [...CLI, ...args], { cwd, maxBuffer: 64 << 20 });
  return stdout;
}

/** Run and expect failure: returns { code, stderr }. */
export async function steerlabFails(
  cwd: string,
  ...args: string[]
): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [...CLI, ...args], { cwd, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { code: number; stderr: string };
    return { code: err.code, stderr: err.stderr };
  }
  throw new Error(`steerlab ${args.join(" ")} was expected to fail`);
}
