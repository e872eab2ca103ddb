/**
 * steerlab's public library API. The CLI (src/cli) and any server are thin skins over these functions.
 * Grouped along the data flow: files -> models and engines -> vectors -> sweeps -> fits -> reports.
 */

// The tradeoff lab
// Sweeps over several machines: shards and merge, or a BullMQ queue on Redis with workers
export { type QueuedSweepOptions, type QueuedSweepResult, queueSweep } from "./distrib/coordinator.js";
export { type QueueStatus, queueStatus, removeRun } from "./distrib/status.js";
export { type SweepWorker, type SweepWorkerOptions, startSweepWorker } from "./distrib/worker.js";
// Errors
export {
  isSteerlabError,
  SteerlabError,
  type SteerlabErrorCode,
  type SteerlabErrorDetails,
} from "./errors.js";
export { loadInstructions, loadMmlu, loadStatements } from "./eval/datasets.js";
export {
  GRID_FILE,
  type MissingCells,
  missingCells,
  type RunGrid,
  readRunGrid,
} from "./eval/run-grid.js";
export { isStale, type LockHolder, lockRunDir, type RunLock, releaseHeldLocks } from "./eval/run-lock.js";
export { classifyKeywords, REFUSAL_RULES } from "./eval/score-behavior.js";
export { scoreHelpfulness } from "./eval/score-helpfulness.js";
export {
  identityChanges,
  keyOf,
  RECORD_KEY_FIELDS,
  ResultStore,
  recordKey,
  type StoreDamage,
  type StoreRecovery,
  type SweepRecord,
  uniqueRecords,
} from "./eval/store.js";
export { type MergeResult, mergeRuns } from "./eval/store-merge.js";
export { parseShard, planChunks, type SweepChunk, shardChunks } from "./eval/sweep-chunks.js";
export { loadSweepConfig, parseSweepConfig, runIdentity, type SweepConfig } from "./eval/sweep-config.js";
export {
  configProblems,
  fitOptionsSchema,
  sweepConfigSchema,
  taskSpecSchema,
} from "./eval/sweep-config-schema.js";
export { readRunReport, reportOfRun, sweepToDir, sweepWithModel } from "./eval/sweep-plan.js";
export { trainByteLevelBpe } from "./io/bpe-train.js";
// Files: checkpoints, tokenizers
export { readGguf, writeGguf } from "./io/gguf.js";
export { loadGgufModel, saveGgufModel } from "./io/gguf-model.js";
export { loadHfModel, saveHfModel } from "./io/hf-model.js";
export { readSafetensors, writeSafetensors } from "./io/safetensors.js";
export { loadTokenizerFromHfDir, tokenizerFromGguf, tokenizerFromJson } from "./io/tokenizer.js";
export type { ChatMessage, Tokenizer } from "./io/tokenizer-types.js";
export { writeFileAtomic, writeFileAtomicWith } from "./io/write-atomic.js";
// One forward driver over compute backends: a new backend implements ForwardBackend and extends ForwardDriver
export type { BackendCall, CallInputs, ForwardBackend, KVStore } from "./model/backend.js";
// Models and engines
export type { ModelConfig } from "./model/config.js";
export { ForwardDriver } from "./model/driver.js";
export type {
  Batch,
  Engine,
  ForwardOptions,
  ForwardResult,
  Hook,
  HookBinding,
  HookContext,
  KVCache,
} from "./model/engine.js";
export {
  type GenerateOptions,
  type GenerationResult,
  generate,
  generateBatch,
  type RowRequest,
  streamGenerate,
  streamGenerateRows,
} from "./model/generate.js";
export { type HookPoint, hookName, parseHookName, parseLayers, SITES, type Site } from "./model/hooks.js";
export { inspectModel } from "./model/inspect.js";
export { loadModel } from "./model/load.js";
export { nextTokenLogprobs, scoreContinuations } from "./model/logprobs.js";
export type { LoadedModel, LoadOptions } from "./model/model.js";
export { type Backend, type OpenedModel, type OpenOptions, openModel } from "./model/open.js";
export { rowHooks } from "./model/row-hooks.js";
export {
  denseWeights,
  isQuant,
  LazyWeights,
  type LoadDtype,
  type ModelWeights,
  type QuantTensor,
  W,
  type WeightName,
} from "./model/weights.js";
export { ReferenceEngine } from "./reference/engine.js";
export { buildReport } from "./report/build.js";
export { reportFromPaperData } from "./report/paper.js";
export { writeReport } from "./report/writers.js";
export {
  createOrtEngine,
  engineWeightBytes,
  OrtEngine,
  type OrtEngineOptions,
  spansFor,
} from "./runtime/ort-engine.js";
// Serving: the OpenAI-compatible server with steering per request
export { createApp, type ServeContext, type ServeOptions } from "./serve/app.js";
export { type LabOptions, labRoutes } from "./serve/lab/routes.js";
export * as serveSchemas from "./serve/schemas.js";
export { type ListenOptions, type RunningServer, startServer } from "./serve/server.js";
// Steering vectors
export {
  type PositionSpec,
  parsePositions,
  type SteerOp,
  type SteerOptions,
  steeringHooks,
} from "./steer/apply.js";
export { negate, normalize, orthogonalize, scale, selectLayers, sum } from "./steer/arithmetic.js";
export { collectActivations, streamActivations } from "./steer/collect.js";
export { readControlVector, writeControlVector } from "./steer/control-vector-gguf.js";
export { extract } from "./steer/extract.js";
export { type ExtractFromModelOptions, extractFromModel } from "./steer/extract-model.js";
export type { ExtractionMethod } from "./steer/methods/method.js";
export { getMethod, methodNames, registerMethod } from "./steer/methods/registry.js";
export { type Monitor, projectionMonitor } from "./steer/monitor.js";
export { loadDataset, loadLabelled, loadPairs } from "./steer/pairs.js";
export { parseReadPosition, type ReadPosition } from "./steer/read.js";
export { prepareChat, preparePrompt, steerCallHooks } from "./steer/steer-call.js";
export { checkVectorFits, makeVector, type SteeringVector } from "./steer/vector.js";
export { readVector, writeVector } from "./steer/vector-file.js";
export { decodeAnyVector, loadVector, saveVector } from "./steer/vector-load.js";
export { fitCurve, loadCurve } from "./theory/curves.js";
// Theory and reports
export { fitCorollary, fitLocalLinear, fitLocalQuadratic, fitTanh } from "./theory/laws.js";
export { efficientRegime } from "./theory/regime.js";
export { VERSION } from "./version.js";
