/** The engines a checkpoint runs on (model/open.ts opens them; configs and forms check the name against this). */
export type Backend = "onnxruntime" | "reference" | "ggml";
export const BACKENDS: readonly Backend[] = ["onnxruntime", "reference", "ggml"];
