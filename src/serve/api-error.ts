/**
 * Errors as OpenAI's clients expect them: an HTTP status and {error: {message, type, param, code}}. Library
 * errors (SteerlabError) and schema errors (zod) are mapped here, in one place; anything else is a 500 whose
 * details stay in the server (the client gets a generic message).
 */
import { ZodError } from "zod";
import { SteerlabError } from "../errors.js";

export type ApiStatus = 400 | 401 | 404 | 409 | 413 | 429 | 500 | 503;

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

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ZodError) {
    const issue = e.issues[0]!;
    const param = issue.path.map(String).join(".") || null;
    const more = e.issues.length > 1 ? ` (and ${e.issues.length - 1} more problems)` : "";
    return new ApiError(
      400,
      `${param ? `${param}: ` : ""}${issue.message}${more}`,
      "invalid_request_error",
      "invalid_value",
      param,
    );
  }
  if (e instanceof SteerlabError) {
    const param = e.details.field ?? null;
    if (e.code === "not_found") {
      const inRequest = param !== null && REQUEST_FIELDS.test(param);
      return new ApiError(
        inRequest ? 400 : 404,
        e.message,
        "invalid_request_error",
        "vector_not_found",
        param,
      );
    }
    return new ApiError(400, e.message, "invalid_request_error", e.code, param);
  }
  return new ApiError(500, "internal server error", "server_error", "internal_error");
}
