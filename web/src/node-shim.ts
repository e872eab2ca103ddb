/**
 * Stand-ins for the Node built-ins (and onnxruntime-node) that reused library modules import for paths the
 * browser never takes (reading files, Node sessions). Calling one is a bug, so it throws.
 */
function unavailable(name: string) {
  return (): never => {
    throw new Error(`${name} is not available in the browser`);
  };
}

export const existsSync = unavailable("fs.existsSync");
export const statSync = unavailable("fs.statSync");
export const readFileSync = unavailable("fs.readFileSync");
export const writeFileSync = unavailable("fs.writeFileSync");
export const mkdirSync = unavailable("fs.mkdirSync");
export const openSync = unavailable("fs.openSync");
export const closeSync = unavailable("fs.closeSync");
export const writeSync = unavailable("fs.writeSync");
export const readSync = unavailable("fs.readSync");
export const fstatSync = unavailable("fs.fstatSync");
export const readFile = unavailable("fs.readFile");
export const join = unavailable("path.join");
export const basename = unavailable("path.basename");
export const dirname = unavailable("path.dirname");
export const fsyncSync = unavailable("fs.fsyncSync");
export const readdirSync = unavailable("fs.readdirSync");
export const renameSync = unavailable("fs.renameSync");
export const unlinkSync = unavailable("fs.unlinkSync");
export const linkSync = unavailable("fs.linkSync");
export const rmSync = unavailable("fs.rmSync");
export const createHash = unavailable("crypto.createHash");
export const fileURLToPath = unavailable("url.fileURLToPath");
export const createRequire = unavailable("module.createRequire");
export const receiveMessageOnPort = unavailable("worker_threads.receiveMessageOnPort");
export class Worker {
  constructor() {
    throw new Error("worker_threads.Worker is not available in the browser");
  }
}
export class MessageChannel {
  constructor() {
    throw new Error("worker_threads.MessageChannel is not available in the browser");
  }
}
export default {};
/** onnxruntime-node (src/runtime/session.ts): the lab creates onnxruntime-web sessions instead. */
export const InferenceSession = { create: unavailable("onnxruntime-node") };
