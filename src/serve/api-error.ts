/**
 * Errors as OpenAI's clients expect them: an HTTP status and {error: {message, type, param, code}}. Library
 * errors (SteerlabError) and schema errors (zod) are mapped here, in one place, for the API and the web lab;
 * anything else is a 500 whose details stay in the server (the client gets a generic message).
 */
import type { Context } from "hono";
import { ZodError, type ZodIssue } from "zod";
import { SteerlabError, type SteerlabErrorCode } from "../errors.js";

export type ApiStatus = 400 | 401 | 404 | 409 | 413 | 422 | 429 | 500 | 501 | 503;

export class ApiError extends Error {
  constructor(
    readonly status: ApiStatus,
    message: string,
    readonly type = "invalid_request_error",
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Request fields that name library vectors: an unknown name there is a bad request, not a missing route. */
const REQUEST_FIELDS = /^(steering|control_vectors|vllm_xargs|monitor)/;

/**
 * How library errors become statuses. "openai": the /v1 API, where OpenAI's clients expect every bad request as
 * 400 (a missing vector is 404, or 400 when the request body names it). "rest": the lab's data endpoints, one
 * status per code (422 a file that parses but cannot be used, 501 what steerlab does not do).
 */
export type ErrorStyle = "openai" | "rest";

const REST_STATUS: Record<SteerlabErrorCode, ApiStatus> = {
  bad_input: 400,
  bad_config: 400,
  bad_file: 422,
  bad_tensor: 422,
  mismatch: 422,
  unsupported: 501,
  not_found: 404,
  io: 500,
  locked: 409,
};

export function toApiError(e: unknown, style: ErrorStyle = "openai"): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ZodError) {
    const issue = specificIssue(e.issues[0]!);
    const param = issue.path.map(String).join(".") || null;
    const more = e.issues.length > 1 ? ` (and ${e.issues.length - 1} more problems)` : "";
    return new ApiError(
      400,
      // A message that already names its field ("logit_bias is not supported") is not prefixed with it again.
      `${param && !issue.message.startsWith(param) ? `${param}: ` : ""}${issue.message}${more}`,
      "invalid_request_error",
      "invalid_value",
      param,
    );
  }
  if (e instanceof SteerlabError) {
    const param = e.details.field ?? null;
    const message = apiMessage(e);
    if (style === "rest")
      return new ApiError(REST_STATUS[e.code], message, "invalid_request_error", e.code, param);
    if (e.code === "not_found") {
      const inRequest = param !== null && REQUEST_FIELDS.test(param);
      return new ApiError(inRequest ? 400 : 404, message, "invalid_request_error", "vector_not_found", param);
    }
    return new ApiError(400, message, "invalid_request_error", e.code, param);
  }
  return new ApiError(500, "internal server error", "server_error", "internal_error");
}

/**
 * A library error as an API client should read it: a lone problem the message already states is not repeated,
 * and the library's hint about `allowNonFinite (--allow-non-finite)`, a CLI flag the client cannot pass, becomes
 * what holds for this server. Vectors (uploaded, inline or in the library) are always checked; only model
 * outputs follow the server's own --allow-non-finite, which whoever starts `steerlab serve` sets.
 */
function apiMessage(e: SteerlabError): string {
  const d = e.details;
  const problems = d.problems?.length === 1 && e.brief.includes(d.problems[0]!) ? undefined : d.problems;
  let hint = d.hint;
  if (hint?.includes("--allow-non-finite"))
    hint = hint.includes("raw output")
      ? "the model produced NaN/Inf (often a steering scale too large for float32): lower the scale; the server returns raw non-finite outputs only when started with steerlab serve --allow-non-finite"
      : "this server accepts only finite vectors whose squared norm fits float32: fix or rescale the values (re-extract the vector, or lower inline data by the factor you put into scale)";
  if (problems === d.problems && hint === d.hint) return e.message;
  const { problems: _p, hint: _h, ...rest } = d;
  return new SteerlabError(e.code, e.brief, {
    ...rest,
    ...(problems ? { problems } : {}),
    ...(hint ? { hint } : {}),
  }).message;
}

/**
 * A union's own issue says only "Invalid input" at the union's path (e.g. `steering`, which is `false` or an
 * object): report instead the issue of the branch that got furthest into the value (the deepest path), which
 * names the field and what it expected ("steering.vectors.0.data: Expected array, received null").
 */
export function specificIssue(issue: ZodIssue): ZodIssue {
  if (issue.code !== "invalid_union") return issue;
  let best: ZodIssue = issue;
  for (const branch of issue.unionErrors) {
    const inner = branch.issues[0] ? specificIssue(branch.issues[0]) : null;
    if (inner && inner.path.length > best.path.length) best = inner;
  }
  return best;
}

/** The JSON error response for any thrown value. */
export function errorResponse(c: Context, e: unknown, style: ErrorStyle = "openai"): Response {
  const err = toApiError(e, style);
  return c.json(err.body(), err.status);
}
