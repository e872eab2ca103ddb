/**
 * Random access to the bytes of a checkpoint, from a file descriptor or an in-memory buffer. Readers take a
 * ByteSource so that large files are read piecewise (header first, then one tensor at a time: peak memory stays
 * near the f32 weights) and so that fuzz tests can feed truncated or corrupted buffers through the same code.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { SteerlabError } from "../errors.js";
import { checkFile } from "./files.js";

export interface ByteSource {
  /** Path (or a label) used in error messages. */
  readonly file: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`; a SteerlabError("bad_file") if that runs past the end. */
  read(offset: number, length: number, what: string): Uint8Array;
  close(): void;
}

function checkRange(file: string, size: number, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new SteerlabError("bad_file", `invalid byte range for ${what}`, {
      file,
      field: what,
      got: `offset ${offset}, length ${length}`,
    });
  }
  if (offset + length > size) {
    throw new SteerlabError("bad_file", `file is truncated: ${what} runs past the end`, {
      file,
      field: what,
      expected: `bytes ${offset}..${offset + length}`,
      got: `file size ${size}`,
    });
  }
}

export function bufferSource(buf: Uint8Array, file: string): ByteSource {
  return {
    file,
    size: buf.length,
    read(offset, length, what) {
      checkRange(file, buf.length, offset, length, what);
      return buf.subarray(offset, offset + length);
    },
    close() {},
  };
}

export function fileSource(path: string, what = "file"): ByteSource {
  checkFile(path, what);
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new SteerlabError("not_found", `cannot open ${path}`, { file: path, got: (e as Error).message });
  }
  const size = fstatSync(fd).size;
  return {
    file: path,
    size,
    read(offset, length, what) {
      checkRange(path, size, offset, length, what);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n <= 0) {
          throw new SteerlabError("bad_file", `short read for ${what}`, { file: path, field: what });
        }
        done += n;
      }
      return out;
    },
    close() {
      closeSync(fd);
    },
  };
}

/** Run `f` with a file source and always close it. */
export function withFile<T>(path: string, f: (src: ByteSource) => T): T {
  const src = fileSource(path);
  try {
    return f(src);
  } finally {
    src.close();
  }
}
