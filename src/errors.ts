/**
 * One error family for the whole library. Every error names what was wrong (code), where (file, field)
 * and how to fix it (hint). Library code never prints or exits; the CLI formats these.
 */
export type SteerlabErrorCode =
  | "bad_file" // a file is truncated, malformed or hostile
  | "bad_config" // config.json / metadata has a missing or invalid field
  | "bad_tensor" // a tensor is missing, has the wrong shape or an unsupported dtype
  | "unsupported" // an architecture, dtype or feature steerlab does not handle
  | "bad_input" // wrong shapes, NaN/Inf, bad options passed to an API
  | "mismatch" // a vector or file made for another model
  | "not_found" // a path or name that does not exist
  | "io" // the file system refused a write: disk full, quota, permission, read-only, a directory in the way
  | "locked"; // a run folder is in use by another process

export interface SteerlabErrorDetails {
  file?: string;
  field?: string;
  expected?: string;
  got?: string;
  hint?: string;
  /** Several problems collected from one batch (e.g. every bad tensor of a checkpoint). */
  problems?: string[];
}

export class SteerlabError extends Error {
  readonly code: SteerlabErrorCode;
  readonly details: SteerlabErrorDetails;
  /** The message without its details: what a caller that re-raises with other details starts from. */
  readonly brief: string;

  constructor(code: SteerlabErrorCode, message: string, details: SteerlabErrorDetails = {}) {
    super(SteerlabError.compose(message, details));
    this.name = "SteerlabError";
    this.code = code;
    this.details = details;
    this.brief = message;
  }

  private static compose(message: string, d: SteerlabErrorDetails): string {
    const parts = [message];
    if (d.file) parts.push(`file: ${d.file}`);
    if (d.field) parts.push(`field: ${d.field}`);
    if (d.expected) parts.push(`expected: ${d.expected}`);
    if (d.got) parts.push(`got: ${d.got}`);
    if (d.problems?.length) parts.push(`problems:\n  - ${d.problems.join("\n  - ")}`);
    if (d.hint) parts.push(`hint: ${d.hint}`);
    return parts.join("; ");
  }
}

export function isSteerlabError(e: unknown, code?: SteerlabErrorCode): e is SteerlabError {
  return e instanceof SteerlabError && (code === undefined || e.code === code);
}
