/**
 * Batched matrix products for the trainer: every linear layer and both attention products, forward and backward,
 * are one call of `bmm`. Two interchangeable backends:
 *   - plainMatmul: readable TypeScript (float64 accumulation); the oracle for gradient checks and small tests;
 *   - ortMatmul: onnxruntime-node's MatMul (MLAS kernels, ~100x faster here), which makes the demo model trainable
 *     within minutes on 2 cores. Tests check that the two agree.
 * Everything else in the trainer (norms, RoPE, softmax, SwiGLU, cross-entropy) is plain TypeScript.
 */
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";

/**
 * c[b] = opA(a[b]) opB(b[b]) for b < batch, row-major, with
 *   opA(a[b]) [m, k]: a is [batch, m, k], or [batch, k, m] when transA
 *   opB(b[b]) [k, n]: b is [batch, k, n], or [batch, n, k] when transB; with bBatch = false one b serves every batch
 * Returns c [batch, m, n] (a new buffer).
 */
export interface BmmArgs {
  a: Float32Array;
  b: Float32Array;
  batch: number;
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
  bBatch?: boolean;
}

export interface MatmulBackend {
  readonly name: string;
  bmm(args: BmmArgs): Promise<Float32Array>;
}

export const plainMatmul: MatmulBackend = {
  name: "typescript",
  async bmm({ a, b, batch, m, k, n, transA = false, transB = false, bBatch = true }) {
    const c = new Float32Array(batch * m * n); // [batch, m, n]
    const acc = new Float64Array(n); // [n] one row of c
    for (let t = 0; t < batch; t++) {
      const ao = t * m * k;
      const bo = bBatch ? t * k * n : 0;
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const aip = transA ? a[ao + p * m + i]! : a[ao + i * k + p]!;
          if (aip === 0) continue;
          if (transB) for (let j = 0; j < n; j++) acc[j] += aip * b[bo + j * k + p]!;
          else for (let j = 0; j < n; j++) acc[j] += aip * b[bo + p * n + j]!;
        }
        c.set(acc, (t * m + i) * n);
      }
    }
    return c;
  },
};

const { onnx } = onnxProto;

/** A graph C = MatMul(opA(A), opB(B)) with symbolic 3-D shapes; op = Transpose(perm 0,2,1) where asked. */
function matmulGraph(transA: boolean, transB: boolean): Uint8Array {
  const vi = (name: string, p: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: 1, shape: { dim: [0, 1, 2].map((i) => ({ dimParam: `${p}${i}` })) } } },
    });
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const operand = (x: string, trans: boolean): string => {
    if (!trans) return x;
    nodes.push(
      onnx.NodeProto.create({
        name: `/${x}/Transpose`,
        opType: "Transpose",
        input: [x],
        output: [`${x}T`],
        attribute: [onnx.AttributeProto.create({ name: "perm", type: 7, ints: [0, 2, 1] })],
      }),
    );
    return `${x}T`;
  };
  const ia = operand("A", transA);
  const ib = operand("B", transB);
  nodes.push(onnx.NodeProto.create({ name: "/MatMul", opType: "MatMul", input: [ia, ib], output: ["C"] }));
  const graph = onnx.GraphProto.create({
    name: "bmm",
    node: nodes,
    input: [vi("A", "a"), vi("B", "b")],
    output: [vi("C", "c")],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The onnxruntime-node backend: one small session per (transA, transB), created on first use. */
export async function ortMatmul(threads = 2): Promise<MatmulBackend> {
  const sessions = new Map<string, ort.InferenceSession>();
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  };
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      sessions.set(`${ta}${tb}`, await ort.InferenceSession.create(matmulGraph(ta, tb), options));
    }
  }
  return {
    name: "onnxruntime",
    async bmm({ a, b, batch, m, k, n, transA = false, transB = false, bBatch = true }) {
      const s = sessions.get(`${transA}${transB}`)!;
      // onnxruntime-node cannot read SharedArrayBuffer memory (data-parallel parameters): copy those operands
      if (a.buffer instanceof SharedArrayBuffer) a = a.slice();
      if (b.buffer instanceof SharedArrayBuffer) b = b.slice();
      const A = new ort.Tensor("float32", a, transA ? [batch, k, m] : [batch, m, k]);
      const bDims = transB ? [n, k] : [k, n];
      const B = new ort.Tensor("float32", b, [bBatch ? batch : 1, bDims[0]!, bDims[1]!]);
      const out = await s.run({ A, B });
      return out.C!.data as Float32Array;
    },
  };
}
