#!/usr/bin/env node
// Builds steerlab's ggml addon (native/ggml_addon.cc -> native/build/Release/steerlab_ggml.node) with node-gyp,
// against Node's own headers (nothing is downloaded) and the ggml that the dev dependency node-llama-cpp ships:
// its prebuilt shared libraries (@node-llama-cpp/<platform>-<arch>/bins) and the headers in its llama.cpp git
// bundle (extracted to native/.headers, ignored). Run by `npm ci` / `npm install` (package.json "install") and by
// `npm run build:native`.
//
// Without node-llama-cpp's binaries for this platform (e.g. `npm ci --omit=dev`) it says so and exits 0: the ggml
// backend is then unavailable and ggmlAvailable() says why. With them, a failed build fails the install.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const nativeDir = join(root, "native");
const platform = `${process.platform}-${process.arch}`;

// A package's folder as Node would find it from the repository root (their "exports" hide package.json).
function find(name) {
  for (let dir = root; ; dir = dirname(dir)) {
    const p = join(dir, "node_modules", name);
    if (existsSync(join(p, "package.json"))) return p;
    if (dirname(dir) === dir) return undefined;
  }
}

const binsPkg = find(`@node-llama-cpp/${platform}`);
const bins = binsPkg && join(binsPkg, "bins", platform);
const llamaPkg = find("node-llama-cpp");
const bundle = llamaPkg && join(llamaPkg, "llama", "gitRelease.bundle");
if (!bins || !existsSync(join(bins, "libggml-base.so")) || !bundle || !existsSync(bundle)) {
  console.log(
    `steerlab: ggml addon not built (node-llama-cpp's ggml binaries for ${platform} are not installed); the ggml backend is unavailable`,
  );
  process.exit(0);
}

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: "inherit", ...opts });

// Headers: only ggml/include of the bundle's commit, re-extracted when the bundle changes.
const headers = join(nativeDir, ".headers");
const stamp = join(headers, "bundle-head");
const head = execFileSync("git", ["bundle", "list-heads", bundle], { encoding: "utf8" }).trim();
if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== head) {
  rmSync(headers, { recursive: true, force: true });
  mkdirSync(headers, { recursive: true });
  const tmp = join(headers, "bundle.git");
  run("git", ["clone", "-q", "--bare", bundle, tmp]);
  const tar = execFileSync("git", ["--git-dir", tmp, "archive", "HEAD", "ggml/include"]);
  execFileSync("tar", ["-x", "-C", headers], { input: tar });
  rmSync(tmp, { recursive: true, force: true });
  writeFileSync(stamp, head);
}

// node-gyp: npm puts it on PATH for lifecycle scripts; otherwise take the one inside npm. Node's own headers
// (npm's nodedir, else the running Node's prefix) so that node-gyp never downloads any.
const npmGyp = join(
  dirname(process.execPath),
  "..",
  "lib",
  "node_modules",
  "npm",
  "node_modules",
  "node-gyp",
  "bin",
);
const gyp = [process.env.npm_config_node_gyp, join(npmGyp, "node-gyp.js")].find((p) => p && existsSync(p));
const prefix = join(dirname(process.execPath), "..");
const nodedir =
  process.env.npm_config_nodedir ||
  (existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined);
if (!gyp) throw new Error("steerlab: node-gyp not found (it comes with npm)");
const args = [gyp, "rebuild", "--silent", `--jobs=2`];
if (nodedir) args.push(`--nodedir=${nodedir}`);
args.push("--", `-Dggml_include=${join(headers, "ggml", "include")}`, `-Dggml_bins=${bins}`);
run(process.execPath, args, { cwd: nativeDir });
console.log("steerlab: ggml addon built (native/build/Release/steerlab_ggml.node)");
