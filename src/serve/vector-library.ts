/**
 * The server's vector library: the steering vectors in one directory (--vectors DIR), by name. A name maps to
 * DIR/NAME.safetensors (steerlab) or DIR/NAME.gguf (llama.cpp control vector); names are checked against
 * VECTOR_NAME, so nothing a client sends reaches a path outside DIR. Uploads are decoded, checked (finite,
 * shape, fit to the served model) before anything is written, and written atomically (temp file + rename).
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import type { LoadedModel } from "../model/model.js";
import { checkVectorFits, type SteeringVector } from "../steer/vector.js";
import { decodeAnyVector, isGgufBytes } from "../steer/vector-load.js";
import { ApiError } from "./api-error.js";
import { VECTOR_NAME } from "./schemas.js";

const EXTS = [".safetensors", ".gguf"] as const;

export interface VectorInfo {
  name: string;
  format: "steerlab" | "gguf";
  site: string;
  layers: number[];
  hidden_size: number;
  scale: "unit" | "raw";
  method: string;
  /** L2 norm of each layer's direction, in `layers` order. */
  norms: number[];
  /** Whether it can steer the served model; the reasons when not. */
  fits: boolean;
  problems?: string[];
  bytes: number;
}

interface Entry {
  vector: SteeringVector;
  file: string;
  mtimeMs: number;
  size: number;
}

export function checkVectorName(name: string, field = "name"): string {
  if (!VECTOR_NAME.test(name)) {
    throw new SteerlabError("bad_input", "bad vector name", {
      field,
      expected: "1-64 of A-Z a-z 0-9 . _ -, not starting with '.'",
      got: JSON.stringify(name.slice(0, 80)),
    });
  }
  return name;
}

function norm(d: Float32Array): number {
  let s = 0;
  for (const x of d) s += x * x;
  return Math.sqrt(s);
}

export class VectorLibrary {
  private readonly cache = new Map<string, Entry>();

  constructor(
    readonly dir: string | null,
    private readonly model: LoadedModel,
    readonly maxBytes = 64 * 1024 * 1024,
    /** Serve vectors whose file names another checkpoint of the same shape (serve --allow-other-weights). */
    readonly allowOtherWeights = false,
  ) {
    if (dir) mkdirSync(dir, { recursive: true });
  }

  /** The file of a name, if it exists; two files of one name (copied in by hand) are ambiguous and refused. */
  private fileOf(name: string, field = "name"): string | null {
    if (!this.dir) return null;
    const dir = this.dir;
    const found = EXTS.map((ext) => join(dir, name + ext)).filter((f) => existsSync(f));
    if (found.length > 1)
      throw new SteerlabError(
        "bad_input",
        `the name "${name}" is ambiguous: the library holds ${EXTS.map((e) => name + e).join(" and ")}`,
        {
          field,
          hint: `name the file with control_vectors[].path ("${name}.gguf"), or rename one of them in the vector folder`,
        },
      );
    return found[0] ?? null;
  }

  names(): string[] {
    if (!this.dir) return [];
    const out = new Set<string>();
    for (const f of readdirSync(this.dir)) {
      const ext = EXTS.find((e) => f.endsWith(e));
      if (!ext) continue;
      const name = f.slice(0, -ext.length);
      if (VECTOR_NAME.test(name)) out.add(name);
    }
    return [...out].sort();
  }

  /** Load (cached by mtime and size) a vector of the library; not_found when there is none of that name. */
  get(name: string, field = "name"): SteeringVector {
    checkVectorName(name, field);
    const file = this.fileOf(name, field);
    if (!file) {
      throw new SteerlabError("not_found", `no vector named "${name}" in the library`, {
        field,
        hint: "list them with GET /v1/steering/vectors, add one with POST /v1/steering/vectors?name=...",
      });
    }
    return this.load(file);
  }

  /**
   * A vector by its file name in the library, as llama.cpp clients name control vectors ("refusal.gguf"; without
   * an extension, as get()). A path with folders is refused: the server never maps a client's path to a file.
   */
  getByFile(fileName: string, field: string): SteeringVector {
    if (/[/\\]/.test(fileName))
      throw new SteerlabError(
        "bad_input",
        "a control vector path must be a file name in the server's vector library",
        {
          field,
          expected: `a file name such as "${fileName.split(/[/\\]/).pop() || "refusal.gguf"}" (the library is the folder the server was started with, --vectors)`,
          got: JSON.stringify(fileName.slice(0, 120)),
        },
      );
    const ext = EXTS.find((e) => fileName.toLowerCase().endsWith(e));
    if (!ext) return this.get(fileName, field);
    const name = checkVectorName(fileName.slice(0, -ext.length), field);
    const file = this.dir ? join(this.dir, name + ext) : null;
    if (!file || !existsSync(file))
      throw new SteerlabError("not_found", `no vector file "${name}${ext}" in the library`, {
        field,
        hint: "list them with GET /v1/steering/vectors, add one with POST /v1/steering/vectors?name=...",
      });
    return this.load(file);
  }

  /** Decode a library file (cached by path, mtime and size); only finite vectors are served. */
  private load(file: string): SteeringVector {
    const st = statSync(file);
    const hit = this.cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.vector;
    const vector = decodeAnyVector(readFileSync(file), file, this.model);
    this.cache.set(file, { vector, file, mtimeMs: st.mtimeMs, size: st.size });
    return vector;
  }

  /** get(), and the vector must fit the served model (shape, layers, architecture, and weights unless allowed). */
  getFitting(name: string, field = "name", byFile = false): SteeringVector {
    const v = byFile ? this.getByFile(name, field) : this.get(name, field);
    this.checkFits(v, name);
    return v;
  }

  /** checkVectorFits as the CLI does it, with the server's own way to allow another checkpoint in the hint. */
  private checkFits(v: SteeringVector, file?: string): void {
    try {
      checkVectorFits(v, this.model.config, this.model.fingerprint, {
        allowOtherWeights: this.allowOtherWeights,
        file,
      });
    } catch (e) {
      if (e instanceof SteerlabError && e.details.problems?.some((p) => p.startsWith("weights"))) {
        throw new SteerlabError(e.code, e.brief, {
          ...e.details,
          hint: "the vector was extracted from another checkpoint of the same shape; start the server with --allow-other-weights (allowOtherWeights) if that is intended (e.g. a base-model vector on its chat model)",
        });
      }
      throw e;
    }
  }

  info(name: string): VectorInfo {
    const v = this.get(name);
    const file = this.fileOf(name)!;
    const layers = [...v.directions.keys()].sort((a, b) => a - b);
    let problems: string[] | undefined;
    try {
      this.checkFits(v);
    } catch (e) {
      problems = e instanceof SteerlabError ? (e.details.problems ?? [e.message]) : [String(e)];
    }
    return {
      name,
      format: file.endsWith(".gguf") ? "gguf" : "steerlab",
      site: v.site,
      layers,
      hidden_size: v.hiddenSize,
      scale: v.scale,
      method: v.method,
      norms: layers.map((l) => norm(v.directions.get(l)!)),
      fits: problems === undefined,
      ...(problems ? { problems } : {}),
      bytes: statSync(file).size,
    };
  }

  /** Every vector's info; a file that no longer decodes is listed with its problem instead of failing the list. */
  list(): VectorInfo[] {
    return this.names().map((name) => {
      try {
        return this.info(name);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        return {
          name,
          format: "steerlab",
          site: "",
          layers: [],
          hidden_size: 0,
          scale: "raw",
          method: "",
          norms: [],
          fits: false,
          problems: [msg],
          bytes: 0,
        } satisfies VectorInfo;
      }
    });
  }

  /** Check and store an uploaded vector file under `name`. */
  add(name: string, bytes: Uint8Array, overwrite = false): VectorInfo {
    checkVectorName(name);
    if (!this.dir) {
      throw new SteerlabError("bad_input", "this server has no vector directory", {
        hint: "start it with --vectors DIR to store uploads",
      });
    }
    if (bytes.length === 0) throw new SteerlabError("bad_input", "empty upload", { field: "body" });
    if (bytes.length > this.maxBytes) {
      throw new SteerlabError("bad_input", "vector file too large", {
        expected: `at most ${this.maxBytes} bytes`,
        got: `${bytes.length} bytes`,
      });
    }
    const existing = this.fileOf(name);
    if (existing && !overwrite)
      throw new ApiError(
        409,
        `a vector named "${name}" exists; pick another name, delete it first, or pass overwrite=true`,
        "invalid_request_error",
        "vector_exists",
        "name",
      );
    const ext = isGgufBytes(bytes) ? ".gguf" : ".safetensors";
    const v = decodeAnyVector(bytes, `upload:${name}${ext}`, this.model);
    this.checkFits(v, `upload:${name}${ext}`);
    const file = join(this.dir, name + ext);
    const tmp = join(this.dir, `.${name}${ext}.${process.pid}.${Date.now()}.tmp`);
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
    if (existing && existing !== file) unlinkSync(existing);
    return this.info(name);
  }

  remove(name: string): void {
    checkVectorName(name);
    const file = this.fileOf(name);
    if (!file)
      throw new SteerlabError("not_found", `no vector named "${name}" in the library`, { field: "name" });
    unlinkSync(file);
    this.cache.delete(file);
  }
}
