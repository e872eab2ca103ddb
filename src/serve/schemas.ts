/**
 * Every wire object of `steerlab serve`, as zod schemas: OpenAI's chat and completion requests (the fields
 * steerlab honours), the per-request steering extensions (EasySteer's `steering`, llama.cpp-style
 * `control_vectors`, vLLM's `vllm_xargs.steer`), token monitoring, and the vector library's upload query.
 * Unknown fields are ignored (as OpenAI-compatible servers do); known fields are checked strictly.
 */
import { z } from "zod";

/** Bounds that keep one request from costing the server more than a request should. */
export const LIMITS = {
  stopStrings: 4,
  stopLength: 128,
  topLogprobs: 20,
  steeringVectors: 8,
  messages: 256,
  /** Choices per request: n times the number of prompts. */
  choices: 16,
  monitorLayers: 64,
} as const;

const finite = z.number().finite();
const layerIndex = z.number().int();
const layerList = z.array(layerIndex).min(1).max(1024);
/** A vector library name: letters, digits, '.', '_', '-' only, not starting with '.', at most 64 characters. */
export const VECTOR_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;
export const vectorName = z
  .string()
  .regex(VECTOR_NAME, "a vector name is 1-64 of A-Z a-z 0-9 . _ - and does not start with '.'");

export const operatorSchema = z.enum(["add", "ablate", "clamp"]);

/** all | prompt | generated | after | first:K | last:K | window:A..B (steerlab's position specs). */
export const positionsSchema = z
  .string()
  .regex(
    /^(all|prompt|generated|after|(first|last):\d{1,6}|window:\d{1,6}\.\.\d{1,6})$/,
    "positions is all | prompt | generated | after | first:K | last:K | window:A..B",
  );

export const steeringVectorSchema = z
  .object({
    /** A vector in the server's library. */
    name: vectorName.optional(),
    /** Inline directions, one row per layer in `layers` (or one per model layer when `layers` is absent). */
    data: z
      .array(
        z
          .array(finite)
          .min(1)
          .max(1 << 16),
      )
      .min(1)
      .max(1024)
      .optional(),
    /** With `data`: the layers its rows belong to. With `name`: steer these layers of the vector only. */
    layers: layerList.optional(),
    /** r_e for a unit vector (the paper's coefficient), the multiplier of a raw one. */
    scale: finite,
    operator: operatorSchema.optional(),
  })
  .refine((v) => (v.name === undefined) !== (v.data === undefined), {
    message: "give exactly one of name and data",
  });

export const steeringObjectSchema = z.object({
  vectors: z.array(steeringVectorSchema).min(1).max(LIMITS.steeringVectors),
  /** Layers to steer for every vector without its own `layers` (negative counts from the end). */
  layers: layerList.optional(),
  positions: positionsSchema.optional(),
  /** With positions "after": steer the tokens after this text's last occurrence in the prompt. */
  marker: z.string().min(1).max(256).optional(),
  operator: operatorSchema.optional(),
  /** Rescale each steered position back to its unsteered norm. */
  norm_guard: z.boolean().optional(),
});
export type SteeringObject = z.infer<typeof steeringObjectSchema>;

/** false = no steering; absent = the server's default. */
export const steeringSchema = z.union([z.literal(false), steeringObjectSchema]);

/** llama.cpp's --control-vector-scaled FILE:SCALE with --control-vector-layer-range A B, per request. */
export const controlVectorSchema = z
  .object({
    id: vectorName.optional(),
    /** A library file name (never a path on the server: only the base name inside --vectors is looked up). */
    path: z.string().min(1).max(256).optional(),
    scale: finite,
    /** llama.cpp direction indices, inclusive. */
    layer_range: z.tuple([layerIndex, layerIndex]).optional(),
  })
  .refine((v) => (v.id === undefined) !== (v.path === undefined), {
    message: "give exactly one of id and path",
  });

/** vLLM passes extensions in vllm_xargs; `steer` takes the steering object (or its JSON text). */
export const vllmXargsSchema = z
  .object({
    steer: z
      .union([
        steeringSchema,
        z.string().transform((s, ctx) => {
          try {
            return JSON.parse(s) as unknown;
          } catch {
            ctx.addIssue({ code: z.ZodIssueCode.custom, message: "vllm_xargs.steer is not valid JSON" });
            return z.NEVER;
          }
        }),
      ])
      .optional(),
  })
  .passthrough();

/** Per-token monitoring: the projection of the residual stream on a library vector at chosen layers. */
export const monitorSchema = z.object({
  vector: vectorName,
  layers: z.array(layerIndex).min(1).max(LIMITS.monitorLayers).optional(),
});

const stopSchema = z
  .union([
    z.string().min(1).max(LIMITS.stopLength),
    z.array(z.string().min(1).max(LIMITS.stopLength)).max(LIMITS.stopStrings),
  ])
  .nullable()
  .optional();

/** Fields shared by chat and completions. */
const common = {
  model: z.string().max(256).optional(),
  max_tokens: z.number().int().min(0).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  /** llama-server / vLLM extension. */
  top_k: z.number().int().min(0).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  /** Choices per prompt; choice i samples with seed + i. */
  n: z.number().int().min(1).max(LIMITS.choices).nullable().optional(),
  stop: stopSchema,
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  /** llama-server / vLLM extension: keep generating past the end-of-sequence token. */
  ignore_eos: z.boolean().nullable().optional(),
  presence_penalty: z.literal(0).nullable().optional(),
  frequency_penalty: z.literal(0).nullable().optional(),
  steering: steeringSchema.optional(),
  control_vectors: z.array(controlVectorSchema).min(1).max(LIMITS.steeringVectors).optional(),
  vllm_xargs: vllmXargsSchema.optional(),
  monitor: monitorSchema.optional(),
};

const contentPart = z.object({ type: z.literal("text"), text: z.string() });
export const chatMessageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(contentPart)]).nullable(),
  name: z.string().optional(),
});

export const chatRequestSchema = z.object({
  ...common,
  messages: z.array(chatMessageSchema).min(1).max(LIMITS.messages),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(LIMITS.topLogprobs).nullable().optional(),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

export const completionRequestSchema = z.object({
  ...common,
  /** Text, token ids, or a list of either (one choice per prompt, in order). */
  prompt: z.union([
    z.string(),
    z.array(z.number().int().min(0)).min(1),
    z.array(z.string()).min(1).max(LIMITS.choices),
    z
      .array(z.array(z.number().int().min(0)).min(1))
      .min(1)
      .max(LIMITS.choices),
  ]),
  echo: z.boolean().nullable().optional(),
  logprobs: z.number().int().min(0).max(LIMITS.topLogprobs).nullable().optional(),
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

export const uploadQuerySchema = z.object({
  name: vectorName.optional(),
  overwrite: z.enum(["true", "false"]).optional(),
});
