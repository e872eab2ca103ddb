/**
 * Reading input files safely: a directory, a device (/dev/zero), a FIFO or an oversized file where a file is
 * expected is a SteerlabError before a byte is read, never EISDIR from deep inside a parser or a read that never
 * ends. Every reader of the read side goes through checkFile (byte sources) or readTextFile (JSON, YAML, CSV).
 */
import { readFileSync, statSync } from "node:fs";
import { SteerlabError } from "../errors.js";

/** Text inputs (configs, datasets, tokenizer.json) above this are refused: V8 strings stop at ~512 MiB anyway. */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;

/** `path` must be an existing regular file; `what` names it in the error ("data file", "model file", ...). */
export function checkFile(path: string, what: string): { size: number } {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new SteerlabError("not_found", `${what} not found: ${path}`, {
      file: path,
      got: (e as NodeJS.ErrnoException).code ?? (e as Error).message,
    });
  }
  if (st.isDirectory()) {
    throw new SteerlabError("bad_input", `${what} is a directory: ${path}`, {
      file: path,
      expected: "a file",
      got: "a directory",
    });
  }
  if (!st.isFile()) {
    throw new SteerlabError("bad_input", `${what} is not a regular file: ${path}`, {
      file: path,
      expected: "a regular file",
      got: st.isCharacterDevice() ? "a character device" : st.isFIFO() ? "a pipe" : "a special file",
      hint: "devices and pipes have no end to read to; save the data to a file first",
    });
  }
  return { size: st.size };
}

/** Read a UTF-8 text file after checkFile and a size limit (override with maxBytes). */
export function readTextFile(path: string, what: string, opts: { maxBytes?: number } = {}): string {
  const { size } = checkFile(path, what);
  const max = opts.maxBytes ?? MAX_TEXT_BYTES;
  if (size > max) {
    throw new SteerlabError("bad_input", `${what} is too large (${size} bytes, limit ${max})`, {
      file: path,
      expected: `at most ${max} bytes`,
      got: `${size} bytes`,
      hint: "split the file, or raise the limit (maxBytes) if it really is this large",
    });
  }
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new SteerlabError("bad_file", `cannot read ${what}: ${(e as Error).message}`, { file: path });
  }
}

/** A directory where one is expected (a Hugging Face model folder, a run folder). */
export function checkDir(path: string, what: string): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new SteerlabError("not_found", `${what} not found: ${path}`, {
      file: path,
      got: (e as NodeJS.ErrnoException).code ?? (e as Error).message,
    });
  }
  if (!st.isDirectory()) {
    throw new SteerlabError("bad_input", `${what} is not a directory: ${path}`, {
      file: path,
      expected: "a directory",
      got: "a file",
    });
  }
}
