// steerlab's Node-API addon over ggml (llama.cpp's tensor library): CPU backends with a persistent threadpool,
// weights in the file's own layout (mmapped, copied, or repacked into ggml's extra CPU buffer types), and graphs
// built op by op from JavaScript. The contract is src/runtime/ggml/addon.ts (GgmlAddon).
//
// Every op's shapes and types are checked here before ggml is called: a GGML_ASSERT aborts the whole process,
// a thrown JS Error does not.

#include <node_api.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Errors and Node-API helpers

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check(napi_env env, napi_status s, const char* what) {
  if (s == napi_ok) return;
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  throw Fail(std::string(what) + ": " + (info && info->error_message ? info->error_message : "Node-API error"));
}

#define NAPI(call) check(env, (call), #call)

// Runs `body`, turning a C++ exception into a thrown JS Error (never across the Node-API boundary).
template <typename F>
napi_value guarded(napi_env env, F body) {
  try {
    return body();
  } catch (const std::exception& e) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

struct Args {
  napi_value self = nullptr;
  std::vector<napi_value> v;
  void* data = nullptr;
};

Args args(napi_env env, napi_callback_info info, size_t max = 8) {
  Args a;
  size_t n = max;
  a.v.resize(max);
  NAPI(napi_get_cb_info(env, info, &n, a.v.data(), &a.self, &a.data));
  a.v.resize(n);
  return a;
}

napi_valuetype typeOf(napi_env env, napi_value v) {
  napi_valuetype t;
  NAPI(napi_typeof(env, v, &t));
  return t;
}

double number(napi_env env, napi_value v, const std::string& what) {
  if (typeOf(env, v) != napi_number) throw Fail(what + " must be a number");
  double d;
  NAPI(napi_get_value_double(env, v, &d));
  if (!std::isfinite(d)) throw Fail(what + " must be finite");
  return d;
}

int64_t integer(napi_env env, napi_value v, const std::string& what) {
  double d = number(env, v, what);
  if (d != std::floor(d) || std::fabs(d) > 9007199254740991.0) throw Fail(what + " must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

std::string string(napi_env env, napi_value v, const std::string& what) {
  if (typeOf(env, v) != napi_string) throw Fail(what + " must be a string");
  size_t len;
  NAPI(napi_get_value_string_utf8(env, v, nullptr, 0, &len));
  std::string s(len, '\0');
  NAPI(napi_get_value_string_utf8(env, v, s.data(), len + 1, &len));
  return s;
}

std::vector<double> numbers(napi_env env, napi_value v, const std::string& what) {
  bool isArray = false;
  NAPI(napi_is_array(env, v, &isArray));
  if (!isArray) throw Fail(what + " must be an array of numbers");
  uint32_t n;
  NAPI(napi_get_array_length(env, v, &n));
  std::vector<double> out(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    NAPI(napi_get_element(env, v, i, &e));
    out[i] = number(env, e, what + "[" + std::to_string(i) + "]");
  }
  return out;
}

struct Bytes {
  const uint8_t* ptr = nullptr;
  size_t size = 0;
};

// The bytes of an ArrayBufferView (any TypedArray, Buffer or DataView), or nullopt-ish (ptr null, ok false).
bool viewBytes(napi_env env, napi_value v, Bytes& out) {
  bool is = false;
  NAPI(napi_is_typedarray(env, v, &is));
  if (is) {
    napi_typedarray_type t;
    size_t length, byteOffset;
    napi_value ab;
    void* data;
    NAPI(napi_get_typedarray_info(env, v, &t, &length, &data, &ab, &byteOffset));
    size_t el = 1;
    switch (t) {
      case napi_int16_array: case napi_uint16_array: el = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
      default: el = 1;
    }
    out.ptr = static_cast<const uint8_t*>(data);
    out.size = length * el;
    return true;
  }
  NAPI(napi_is_dataview(env, v, &is));
  if (is) {
    size_t length, byteOffset;
    napi_value ab;
    void* data;
    NAPI(napi_get_dataview_info(env, v, &length, &data, &ab, &byteOffset));
    out.ptr = static_cast<const uint8_t*>(data);
    out.size = length;
    return true;
  }
  return false;
}

napi_value jsNumber(napi_env env, double d) {
  napi_value v;
  NAPI(napi_create_double(env, d, &v));
  return v;
}

napi_value jsString(napi_env env, const std::string& s) {
  napi_value v;
  NAPI(napi_create_string_utf8(env, s.c_str(), s.size(), &v));
  return v;
}

napi_value jsUndefined(napi_env env) {
  napi_value v;
  NAPI(napi_get_undefined(env, &v));
  return v;
}

napi_value jsNumberArray(napi_env env, const std::vector<double>& xs) {
  napi_value arr;
  NAPI(napi_create_array_with_length(env, xs.size(), &arr));
  for (size_t i = 0; i < xs.size(); i++) NAPI(napi_set_element(env, arr, i, jsNumber(env, xs[i])));
  return arr;
}

void setReadonly(napi_env env, napi_value obj, const char* name, napi_value value) {
  napi_property_descriptor d = {name, nullptr, nullptr, nullptr, nullptr, value, napi_enumerable, nullptr};
  NAPI(napi_define_properties(env, obj, 1, &d));
}

// ---------------------------------------------------------------------------------------------------------------
// ggml state

// ggml logs to stderr by default; library code prints nothing, so keep the last warnings for error messages.
std::string g_lastLog;
void quietLog(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) {
    g_lastLog += text;
    if (g_lastLog.size() > 2000) g_lastLog.erase(0, g_lastLog.size() - 2000);
  }
}

struct Cpu {
  bool ready = false;
  ggml_backend_dev_t dev = nullptr;
  ggml_backend_reg_t reg = nullptr;
  std::vector<ggml_backend_buffer_type_t> extra;  // extra buffer types in the registry's order (AMX, CPU_REPACK)
  ggml_backend_set_n_threads_t setThreads = nullptr;
  decltype(&ggml_threadpool_new) threadpoolNew = nullptr;
  decltype(&ggml_threadpool_free) threadpoolFree = nullptr;
  decltype(&ggml_backend_cpu_set_threadpool) setThreadpool = nullptr;
} g_cpu;

std::string typeName(int type) {
  if (type < 0 || type >= GGML_TYPE_COUNT) return "type " + std::to_string(type);
  const char* n = ggml_type_name(static_cast<ggml_type>(type));
  return n ? n : "type " + std::to_string(type);
}

std::string desc(const ggml_tensor* t) {
  std::string s = "[";
  for (int i = 0; i < 4; i++) s += std::to_string(t->ne[i]) + (i < 3 ? "," : "]");
  return s + " " + typeName(t->type);
}

// Types a weight may have: known, with a block layout and (for quantized ones) a dequantizer.
bool validType(int type) {
  if (type < 0 || type >= GGML_TYPE_COUNT) return false;
  auto tr = ggml_get_type_traits(static_cast<ggml_type>(type));
  if (!tr || tr->type_size == 0 || tr->blck_size <= 0) return false;
  return !tr->is_quantized || tr->to_float != nullptr;
}

// ne (1 to 4 positive integers, ne0 a multiple of the type's block size) -> 4 dims.
std::vector<int64_t> dims(const std::vector<double>& ne, int type, const std::string& what) {
  if (ne.empty() || ne.size() > 4) throw Fail(what + ": ne must have 1 to 4 dims, got " + std::to_string(ne.size()));
  std::vector<int64_t> out(4, 1);
  for (size_t i = 0; i < ne.size(); i++) {
    if (ne[i] != std::floor(ne[i]) || ne[i] < 1 || ne[i] > 4.0e12)
      throw Fail(what + ": ne[" + std::to_string(i) + "] must be a positive integer, got " + std::to_string(ne[i]));
    out[i] = static_cast<int64_t>(ne[i]);
  }
  // Keeps every byte count below 2^63 (no overflow in the bound checks): 2^48 elements is far beyond any model.
  if (static_cast<double>(out[0]) * out[1] * out[2] * out[3] > 281474976710656.0)
    throw Fail(what + ": ne has more than 2^48 elements");
  int64_t blck = ggml_blck_size(static_cast<ggml_type>(type));
  if (out[0] % blck != 0)
    throw Fail(what + ": ne[0] (" + std::to_string(out[0]) + ") must be a multiple of " + typeName(type) +
               "'s block size " + std::to_string(blck));
  return out;
}

size_t bytesOf(int type, const std::vector<int64_t>& ne) {
  return ggml_row_size(static_cast<ggml_type>(type), ne[0]) * ne[1] * ne[2] * ne[3];
}

ggml_context* smallContext(size_t tensors) {
  ggml_init_params p = {ggml_tensor_overhead() * tensors, nullptr, true};
  ggml_context* ctx = ggml_init(p);
  if (!ctx) throw Fail("ggml_init failed (out of memory)");
  return ctx;
}

struct MapState {
  std::string path;
  uint8_t* base = nullptr;
  size_t size = 0;
  bool closed = false;
  int liveTensors = 0;  // "map" tensors pointing into this mapping: it stays mapped until they are freed
  ggml_backend_buffer_t hostBuffer = nullptr;

  void unmap() {
    if (hostBuffer) ggml_backend_buffer_free(hostBuffer);
    hostBuffer = nullptr;
    if (base) munmap(base, size);
    base = nullptr;
  }
  void maybeUnmap() {
    if (closed && liveTensors == 0) unmap();
  }
  ~MapState() { unmap(); }
};

enum class Kind { Map, Copy, Repack, Zeros };

struct TensorState {
  ggml_context* ctx = nullptr;
  ggml_tensor* t = nullptr;
  ggml_backend_buffer_t buffer = nullptr;  // owned (not in "map" mode)
  std::shared_ptr<MapState> map;
  Kind kind = Kind::Copy;
  bool extra = false;  // in an extra buffer type (repacked): usable only as mul_mat's src0
  bool freed = false;
  size_t bytes = 0;
  std::string bufferType;

  void release() {
    if (freed) return;
    freed = true;
    if (buffer) ggml_backend_buffer_free(buffer);
    buffer = nullptr;
    if (ctx) ggml_free(ctx);
    ctx = nullptr;
    t = nullptr;
    if (map) {
      map->liveTensors--;
      map->maybeUnmap();
      map.reset();
    }
  }
  ~TensorState() { release(); }
};

struct BackendState {
  ggml_backend_t be = nullptr;
  ggml_threadpool_t tp = nullptr;
  ggml_gallocr_t galloc = nullptr;
  int threads = 1;
  bool disposed = false;
  std::vector<std::weak_ptr<TensorState>> tensors;
  std::vector<std::weak_ptr<MapState>> maps;
  uint64_t generation = 0;    // bumped by every compute: results of an older one are gone
  uint64_t lastReserved = 0;  // the graph the compute allocator's assignments are for
  uint64_t graphSerial = 0;

  void live() const {
    if (disposed) throw Fail("ggml backend was disposed");
  }
  template <typename T>
  static void prune(std::vector<std::weak_ptr<T>>& v) {
    size_t j = 0;
    for (auto& w : v)
      if (!w.expired()) v[j++] = w;
    v.resize(j);
  }
  void dispose() {
    if (disposed) return;
    disposed = true;
    for (auto& w : tensors)
      if (auto s = w.lock()) s->release();
    for (auto& w : maps)
      if (auto m = w.lock()) {
        m->closed = true;
        m->unmap();
      }
    tensors.clear();
    maps.clear();
    if (galloc) ggml_gallocr_free(galloc);
    galloc = nullptr;
    if (be) ggml_backend_free(be);
    be = nullptr;
    if (tp && g_cpu.threadpoolFree) g_cpu.threadpoolFree(tp);
    tp = nullptr;
    malloc_trim(0);  // hand freed heap pages back at once (smaller allocations stay on the heap)
  }
  ~BackendState() { dispose(); }
};

struct GraphState {
  std::shared_ptr<BackendState> backend;
  ggml_context* ctx = nullptr;
  ggml_cgraph* gf = nullptr;
  size_t maxNodes = 0;
  std::vector<ggml_tensor*> nodes;                    // node id -> tensor
  std::vector<bool> own;                              // node id -> made in this graph's context
  std::vector<std::shared_ptr<TensorState>> refs;     // persistent tensors this graph uses
  std::vector<std::pair<ggml_tensor*, std::vector<uint8_t>>> inputs;
  uint64_t serial = 0;
  uint64_t computedAt = 0;  // the backend generation of this graph's last compute (0: never)
  size_t expanded = 0;
  bool freed = false;
  int64_t reported = 0;  // bytes of the context told to V8 (napi_adjust_external_memory), so GC sees graphs

  // Tells V8 about the context's used bytes, so that dropped graphs are collected under memory pressure.
  // Finalizers only note what they free (pendingRelease): V8 is not called from them.
  void account(napi_env env) {
    int64_t used = ctx ? static_cast<int64_t>(ggml_used_mem(ctx)) : 0;
    int64_t delta = used - reported - pendingRelease.exchange(0);
    int64_t total;
    if (delta != 0) napi_adjust_external_memory(env, delta, &total);
    reported = used;
  }
  void releaseInFinalizer() {
    if (ctx) ggml_free(ctx);
    ctx = nullptr;
    pendingRelease += reported;
    reported = 0;
  }
  static std::atomic<int64_t> pendingRelease;

  void release(napi_env env) {
    if (ctx) ggml_free(ctx);
    ctx = nullptr;
    account(env);
    gf = nullptr;
    freed = true;
    nodes.clear();
    refs.clear();
    inputs.clear();
  }
  ~GraphState() {
    if (ctx) ggml_free(ctx);
  }
  void live() const {
    backend->live();
    if (freed) throw Fail("ggml graph was freed");
  }
  ggml_tensor* node(napi_env env, napi_value v, const std::string& what) const {
    int64_t id = integer(env, v, what);
    if (id < 0 || id >= static_cast<int64_t>(nodes.size()))
      throw Fail(what + ": no node " + std::to_string(id) + " in this graph (" + std::to_string(nodes.size()) + " nodes)");
    return nodes[id];
  }
  bool isRef(const ggml_tensor* t) const {
    for (auto& r : refs)
      if (r->t == t) return true;
    return false;
  }
  bool isExtra(const ggml_tensor* t) const {
    for (auto& r : refs)
      if (r->t == t) return r->extra;
    return false;
  }
  int add(ggml_tensor* t, bool isOwn) {
    nodes.push_back(t);
    own.push_back(isOwn);
    return static_cast<int>(nodes.size() - 1);
  }
  void room() const {
    if (ggml_used_mem(ctx) + ggml_tensor_overhead() > ggml_get_mem_size(ctx) || nodes.size() + 1 > maxNodes)
      throw Fail("ggml graph is full (" + std::to_string(maxNodes) + " nodes); pass a larger maxNodes to graph()");
  }
};

std::atomic<int64_t> GraphState::pendingRelease{0};

// ---------------------------------------------------------------------------------------------------------------
// Classes: instances are made here only (the constructor takes a native handle as an External).

struct Holder {
  std::shared_ptr<BackendState> backend;
  std::shared_ptr<MapState> map;
  std::shared_ptr<TensorState> tensor;
  std::unique_ptr<GraphState> graph;
};

struct Ctors {
  napi_ref backend = nullptr, map = nullptr, tensor = nullptr, graph = nullptr;
};

Ctors* ctors(napi_env env) {
  void* d = nullptr;
  NAPI(napi_get_instance_data(env, &d));
  return static_cast<Ctors*>(d);
}

napi_value construct(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a = args(env, info, 1);
    if (a.v.size() != 1 || typeOf(env, a.v[0]) != napi_external)
      throw Fail("ggml objects are made by the addon (backend(), mapFile(), weight(), tensor(), graph())");
    void* h = nullptr;
    NAPI(napi_get_value_external(env, a.v[0], &h));
    NAPI(napi_wrap(
        env, a.self, h,
        [](napi_env, void* p, void*) {
          auto* h = static_cast<Holder*>(p);
          if (h->graph) h->graph->releaseInFinalizer();
          delete h;
        },
        nullptr, nullptr));
    return a.self;
  });
}

napi_value instance(napi_env env, napi_ref ctor, Holder* h) {
  napi_value c, ext, obj;
  NAPI(napi_get_reference_value(env, ctor, &c));
  if (napi_create_external(env, h, nullptr, nullptr, &ext) != napi_ok) {
    delete h;
    throw Fail("napi_create_external failed");
  }
  NAPI(napi_new_instance(env, c, 1, &ext, &obj));
  return obj;
}

Holder* holder(napi_env env, napi_value self) {
  void* p = nullptr;
  if (napi_unwrap(env, self, &p) != napi_ok || !p) throw Fail("not a ggml object");
  return static_cast<Holder*>(p);
}

// ---------------------------------------------------------------------------------------------------------------
// Map

napi_value mapClose(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Holder* h = holder(env, args(env, info, 0).self);
    h->map->closed = true;
    h->map->maybeUnmap();
    return jsUndefined(env);
  });
}

// The first non-finite value of a range of the mapping (the loader's NaN/Inf check, done here on the mapped bytes
// instead of in JS): exponent bits all ones is Inf or NaN. Chunks are OR-reduced (a loop the compiler vectorizes)
// and only a bad chunk is searched for its first index. memcpy: safetensors data need not be aligned.
constexpr size_t kScanChunk = 4096;

template <typename U>
__attribute__((optimize("O3"))) bool chunkBad(const uint8_t* p, size_t n, U mask) {
  U bad = 0;
  for (size_t i = 0; i < n; i++) {
    U x;
    memcpy(&x, p + i * sizeof(U), sizeof(U));
    bad |= static_cast<U>((x & mask) == mask);
  }
  return bad != 0;
}

template <typename U>
int64_t firstBadValue(const uint8_t* p, size_t count, U mask) {
  for (size_t c = 0; c < count; c += kScanChunk) {
    size_t n = std::min(kScanChunk, count - c);
    if (!chunkBad<U>(p + c * sizeof(U), n, mask)) continue;
    for (size_t i = c; i < c + n; i++) {
      U x;
      memcpy(&x, p + i * sizeof(U), sizeof(U));
      if ((x & mask) == mask) return static_cast<int64_t>(i);
    }
  }
  return -1;
}

// Blocks of `blockBytes` with f16 fields (scale d, min dmin) at byte offsets `halves`: the first block with a
// non-finite field (the rule of blocksAllFinite in src/io/gguf-quant.ts: the high byte's 0x7c bits all ones).
int64_t firstBadBlock(const uint8_t* p, size_t blocks, size_t blockBytes, const std::vector<size_t>& halves) {
  for (size_t b = 0; b < blocks; b++) {
    const uint8_t* q = p + b * blockBytes;
    for (size_t h : halves)
      if ((q[h + 1] & 0x7c) == 0x7c) return static_cast<int64_t>(b);
  }
  return -1;
}

// map.firstNonFinite(offset, type, count, halves?): F32 / F16 / BF16: the index of the first non-finite of
// `count` values at `offset`; a block type: the index of the first of `count` values' blocks whose f16 fields at
// byte offsets `halves` are non-finite; -1 when none.
napi_value mapFirstNonFinite(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 4);
    Holder* h = holder(env, a.self);
    auto& m = *h->map;
    if (m.closed || !m.base) throw Fail("firstNonFinite: the mapping of " + m.path + " was closed");
    if (a.v.size() < 3) throw Fail("firstNonFinite(offset, type, count, halves?): 3 arguments expected");
    int64_t offset = integer(env, a.v[0], "firstNonFinite: offset");
    int64_t type = integer(env, a.v[1], "firstNonFinite: type");
    int64_t count = integer(env, a.v[2], "firstNonFinite: count");
    if (!validType(static_cast<int>(type))) throw Fail("firstNonFinite: unsupported ggml type " + std::to_string(type));
    if (count < 0) throw Fail("firstNonFinite: count must be >= 0");
    auto t = static_cast<ggml_type>(type);
    int64_t block = ggml_blck_size(t);
    if (count % block != 0)
      throw Fail("firstNonFinite: " + std::to_string(count) + " values are not whole " + typeName(t) + " blocks");
    size_t nbytes = ggml_row_size(t, count);
    if (offset < 0 || static_cast<uint64_t>(offset) > m.size || nbytes > m.size - static_cast<uint64_t>(offset))
      throw Fail("firstNonFinite: " + std::to_string(nbytes) + " bytes at offset " + std::to_string(offset) +
                 " are outside " + m.path + " (" + std::to_string(m.size) + " bytes)");
    const uint8_t* p = m.base + offset;
    size_t n = static_cast<size_t>(count);
    // Map the range's pages in one call rather than a fault per few pages (llama.cpp maps with MAP_POPULATE);
    // an older kernel without it just faults them in.
#ifdef MADV_POPULATE_READ
    {
      uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
      uintptr_t lo = reinterpret_cast<uintptr_t>(p) / page * page;
      uintptr_t hi = reinterpret_cast<uintptr_t>(p) + nbytes;
      if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_READ);
    }
#endif
    int64_t i;
    if (t == GGML_TYPE_F32) i = firstBadValue<uint32_t>(p, n, 0x7f800000u);
    else if (t == GGML_TYPE_F16) i = firstBadValue<uint16_t>(p, n, 0x7c00u);
    else if (t == GGML_TYPE_BF16) i = firstBadValue<uint16_t>(p, n, 0x7f80u);
    else {
      if (a.v.size() < 4) throw Fail(std::string("firstNonFinite: ") + typeName(t) + " needs the offsets of its f16 fields");
      size_t blockBytes = ggml_type_size(t);
      std::vector<size_t> halves;
      for (double d : numbers(env, a.v[3], "firstNonFinite: halves")) {
        if (d < 0 || d != std::floor(d) || d + 2 > static_cast<double>(blockBytes))
          throw Fail("firstNonFinite: f16 field offset " + std::to_string(d) + " is outside a " + typeName(t) + " block");
        halves.push_back(static_cast<size_t>(d));
      }
      i = firstBadBlock(p, n / block, blockBytes, halves);
    }
    return jsNumber(env, static_cast<double>(i));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor

napi_value tensorFree(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Holder* h = holder(env, args(env, info, 0).self);
    h->tensor->release();
    return jsUndefined(env);
  });
}

napi_value tensorObject(napi_env env, std::shared_ptr<BackendState> b, std::shared_ptr<TensorState> s) {
  std::vector<double> ne(s->t->ne, s->t->ne + 4);
  int type = s->t->type;
  int nd = 4;
  while (nd > 1 && ne[nd - 1] == 1) nd--;
  ne.resize(nd);
  b->tensors.push_back(s);
  BackendState::prune(b->tensors);
  auto* h = new Holder();
  h->backend = b;
  h->tensor = s;
  napi_value obj = instance(env, ctors(env)->tensor, h);
  setReadonly(env, obj, "type", jsNumber(env, type));
  napi_value arr = jsNumberArray(env, ne);
  NAPI(napi_object_freeze(env, arr));
  setReadonly(env, obj, "ne", arr);
  return obj;
}

// ---------------------------------------------------------------------------------------------------------------
// Backend

BackendState& backendOf(napi_env env, napi_value self, std::shared_ptr<BackendState>* keep = nullptr) {
  Holder* h = holder(env, self);
  h->backend->live();
  if (keep) *keep = h->backend;
  return *h->backend;
}

napi_value backendMapFile(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    std::shared_ptr<BackendState> b;
    backendOf(env, a.self, &b);
    if (a.v.size() < 1) throw Fail("mapFile(path): path is missing");
    std::string path = string(env, a.v[0], "mapFile: path");
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Fail("mapFile: cannot open " + path + ": " + strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      throw Fail("mapFile: cannot stat " + path + ": " + strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      throw Fail("mapFile: " + path + " is not a regular file");
    }
    if (st.st_size == 0) {
      close(fd);
      throw Fail("mapFile: " + path + " is empty");
    }
    void* p = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) throw Fail("mapFile: cannot mmap " + path + ": " + strerror(e));
    auto m = std::make_shared<MapState>();
    m->path = path;
    m->base = static_cast<uint8_t*>(p);
    m->size = st.st_size;
    b->maps.push_back(m);
    BackendState::prune(b->maps);
    auto* h = new Holder();
    h->backend = b;
    h->map = m;
    napi_value obj = instance(env, ctors(env)->map, h);
    setReadonly(env, obj, "path", jsString(env, path));
    setReadonly(env, obj, "size", jsNumber(env, static_cast<double>(m->size)));
    return obj;
  });
}

// Whether the CPU device runs a mul_mat with `w` as src0 when w lives in `buft` (as llama.cpp's loader asks:
// a dummy mul_mat over 512 activation rows, the weight given an empty buffer of that type).
bool mulMatSupported(ggml_tensor* w, ggml_backend_buffer_type_t buft) {
  ggml_context* ctx = smallContext(4);
  ggml_tensor* b = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, w->ne[0], 512, w->ne[2], w->ne[3]);
  ggml_tensor* op = ggml_mul_mat(ctx, w, b);
  w->buffer = ggml_backend_buft_alloc_buffer(buft, 0);
  bool ok = w->buffer && ggml_backend_dev_supports_op(g_cpu.dev, op);
  if (w->buffer) ggml_backend_buffer_free(w->buffer);
  w->buffer = nullptr;
  ggml_free(ctx);
  return ok;
}

napi_value backendWeight(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 5);
    std::shared_ptr<BackendState> b;
    backendOf(env, a.self, &b);
    if (a.v.size() < 5) throw Fail("weight(src, offset, type, ne, mode): 5 arguments expected");
    std::string mode = string(env, a.v[4], "weight: mode");
    Kind kind;
    if (mode == "map") kind = Kind::Map;
    else if (mode == "copy") kind = Kind::Copy;
    else if (mode == "repack") kind = Kind::Repack;
    else throw Fail("weight: mode must be \"map\", \"repack\" or \"copy\", got \"" + mode + "\"");
    int64_t offset = integer(env, a.v[1], "weight: offset");
    int64_t type = integer(env, a.v[2], "weight: type");
    if (!validType(static_cast<int>(type))) throw Fail("weight: unsupported ggml type " + std::to_string(type));
    auto ne = dims(numbers(env, a.v[3], "weight: ne"), static_cast<int>(type), "weight");
    size_t nbytes = bytesOf(static_cast<int>(type), ne);

    // The source: a GgmlMap (an object wrapping a MapState) or an ArrayBufferView.
    std::shared_ptr<MapState> map;
    Bytes src;
    std::string srcName;
    if (!viewBytes(env, a.v[0], src)) {
      void* p = nullptr;
      if (typeOf(env, a.v[0]) != napi_object || napi_unwrap(env, a.v[0], &p) != napi_ok || !p ||
          !static_cast<Holder*>(p)->map)
        throw Fail("weight: src must be a GgmlMap (from mapFile) or an ArrayBufferView");
      map = static_cast<Holder*>(p)->map;
      if (map->closed || !map->base) throw Fail("weight: the mapping of " + map->path + " was closed");
      src.ptr = map->base;
      src.size = map->size;
      srcName = map->path;
    } else {
      srcName = "the buffer";
      if (kind == Kind::Map) throw Fail("weight: mode \"map\" needs a GgmlMap from mapFile(), not a buffer");
    }
    std::string shape = "[" + std::to_string(ne[0]) + "," + std::to_string(ne[1]) + "," + std::to_string(ne[2]) + "," +
                        std::to_string(ne[3]) + "] " + typeName(static_cast<int>(type));
    if (offset < 0 || static_cast<uint64_t>(offset) > src.size || nbytes > src.size - static_cast<uint64_t>(offset))
      throw Fail("weight: " + shape + " needs " + std::to_string(nbytes) + " bytes at offset " + std::to_string(offset) +
                 " but " + srcName + " has " + std::to_string(src.size) + " bytes");

    auto s = std::make_shared<TensorState>();
    s->kind = kind;
    s->bytes = nbytes;
    s->ctx = smallContext(1);
    s->t = ggml_new_tensor_4d(s->ctx, static_cast<ggml_type>(type), ne[0], ne[1], ne[2], ne[3]);
    const uint8_t* from = src.ptr + offset;

    if (kind == Kind::Map) {
      if (!map->hostBuffer) {
        map->hostBuffer = ggml_backend_dev_buffer_from_host_ptr(g_cpu.dev, map->base, map->size, map->size);
        if (!map->hostBuffer) throw Fail("weight: ggml could not wrap the mapping of " + map->path);
      }
      if (ggml_backend_tensor_alloc(map->hostBuffer, s->t, const_cast<uint8_t*>(from)) != GGML_STATUS_SUCCESS)
        throw Fail("weight: ggml could not place " + shape + " in the mapping of " + map->path);
      s->map = map;
      map->liveTensors++;
      s->bufferType = "mapped";
    } else {
      ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(g_cpu.dev);
      if (kind == Kind::Repack) {
        for (auto* x : g_cpu.extra)
          if (mulMatSupported(s->t, x)) {
            buft = x;
            s->extra = true;
            break;
          }
      }
      s->buffer = ggml_backend_alloc_ctx_tensors_from_buft(s->ctx, buft);
      if (!s->buffer) throw Fail("weight: cannot allocate " + std::to_string(nbytes) + " bytes in " + ggml_backend_buft_name(buft));
      ggml_backend_buffer_set_usage(s->buffer, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
      ggml_backend_tensor_set(s->t, from, 0, nbytes);  // an extra buffer type repacks here
      s->bufferType = ggml_backend_buft_name(buft);
      s->bytes = ggml_backend_buffer_get_size(s->buffer);
      if (kind == Kind::Repack && map) {
        // The copy is what is used now: give the mapped pages of its interior back (as llama.cpp unmaps).
        uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
        uintptr_t lo = (reinterpret_cast<uintptr_t>(from) + page - 1) / page * page;
        uintptr_t hi = (reinterpret_cast<uintptr_t>(from) + nbytes) / page * page;
        if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
      }
    }
    return tensorObject(env, b, s);
  });
}

napi_value backendTensor(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 2);
    std::shared_ptr<BackendState> b;
    backendOf(env, a.self, &b);
    if (a.v.size() < 2) throw Fail("tensor(type, ne): 2 arguments expected");
    int64_t type = integer(env, a.v[0], "tensor: type");
    if (!validType(static_cast<int>(type)) && type != GGML_TYPE_I32)
      throw Fail("tensor: unsupported ggml type " + std::to_string(type));
    auto ne = dims(numbers(env, a.v[1], "tensor: ne"), static_cast<int>(type), "tensor");
    auto s = std::make_shared<TensorState>();
    s->kind = Kind::Zeros;
    s->ctx = smallContext(1);
    s->t = ggml_new_tensor_4d(s->ctx, static_cast<ggml_type>(type), ne[0], ne[1], ne[2], ne[3]);
    s->buffer = ggml_backend_alloc_ctx_tensors_from_buft(s->ctx, ggml_backend_dev_buffer_type(g_cpu.dev));
    if (!s->buffer) throw Fail("tensor: cannot allocate " + std::to_string(ggml_nbytes(s->t)) + " bytes");
    ggml_backend_buffer_clear(s->buffer, 0);
    s->bytes = ggml_backend_buffer_get_size(s->buffer);
    s->bufferType = "CPU";
    return tensorObject(env, b, s);
  });
}

napi_value backendStats(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    BackendState& b = backendOf(env, args(env, info, 0).self);
    std::map<std::string, double> copied;
    double tensors = 0, mapped = 0;
    for (auto& w : b.tensors)
      if (auto s = w.lock())
        if (!s->freed) {
          if (s->kind == Kind::Zeros) tensors += s->bytes;
          else if (s->kind != Kind::Map) copied[s->bufferType] += s->bytes;
        }
    for (auto& w : b.maps)
      if (auto m = w.lock())
        if (m->base) mapped += m->size;
    napi_value out, cp;
    NAPI(napi_create_object(env, &out));
    NAPI(napi_create_object(env, &cp));
    for (auto& [k, v] : copied) NAPI(napi_set_named_property(env, cp, k.c_str(), jsNumber(env, v)));
    NAPI(napi_set_named_property(env, out, "copied", cp));
    NAPI(napi_set_named_property(env, out, "tensors", jsNumber(env, tensors)));
    NAPI(napi_set_named_property(env, out, "compute", jsNumber(env, b.galloc ? ggml_gallocr_get_buffer_size(b.galloc, 0) : 0)));
    NAPI(napi_set_named_property(env, out, "mapped", jsNumber(env, mapped)));
    return out;
  });
}

napi_value backendDispose(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    holder(env, args(env, info, 0).self)->backend->dispose();
    return jsUndefined(env);
  });
}

napi_value backendGraph(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    std::shared_ptr<BackendState> b;
    backendOf(env, a.self, &b);
    int64_t maxNodes = 16384;
    if (!a.v.empty() && typeOf(env, a.v[0]) != napi_undefined) {
      maxNodes = integer(env, a.v[0], "graph: maxNodes");
      if (maxNodes < 1 || maxNodes > (1 << 24)) throw Fail("graph: maxNodes must be 1 to 16777216");
    }
    auto g = std::make_unique<GraphState>();
    g->backend = b;
    g->maxNodes = static_cast<size_t>(maxNodes);
    ggml_init_params p = {ggml_tensor_overhead() * g->maxNodes + ggml_graph_overhead_custom(g->maxNodes, false), nullptr, true};
    g->ctx = ggml_init(p);
    if (!g->ctx) throw Fail("graph: ggml_init failed (out of memory)");
    g->gf = ggml_new_graph_custom(g->ctx, g->maxNodes, false);
    g->serial = ++b->graphSerial;
    g->account(env);
    auto* h = new Holder();
    h->backend = b;
    h->graph = std::move(g);
    return instance(env, ctors(env)->graph, h);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Graph

GraphState& graphOf(napi_env env, napi_value self) {
  Holder* h = holder(env, self);
  if (!h->graph) throw Fail("not a ggml graph");
  h->graph->live();
  return *h->graph;
}

napi_value graphRef(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    GraphState& g = graphOf(env, a.self);
    void* p = nullptr;
    if (a.v.empty() || typeOf(env, a.v[0]) != napi_object || napi_unwrap(env, a.v[0], &p) != napi_ok || !p ||
        !static_cast<Holder*>(p)->tensor)
      throw Fail("ref: expects a GgmlTensor (from weight() or tensor())");
    Holder* th = static_cast<Holder*>(p);
    if (th->backend != g.backend) throw Fail("ref: the tensor belongs to another ggml backend");
    if (th->tensor->freed) throw Fail("ref: the tensor was freed");
    if (g.nodes.size() + 1 > g.maxNodes) throw Fail("ggml graph is full (" + std::to_string(g.maxNodes) + " nodes)");
    g.refs.push_back(th->tensor);
    return jsNumber(env, g.add(th->tensor->t, false));
  });
}

napi_value graphInput(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 3);
    GraphState& g = graphOf(env, a.self);
    if (a.v.size() < 3) throw Fail("input(type, ne, data): 3 arguments expected");
    int64_t type = integer(env, a.v[0], "input: type");
    if (type != GGML_TYPE_F32 && type != GGML_TYPE_F16 && type != GGML_TYPE_I32 && type != GGML_TYPE_BF16)
      throw Fail("input: type must be F32, F16, BF16 or I32, got " + typeName(static_cast<int>(type)));
    auto ne = dims(numbers(env, a.v[1], "input: ne"), static_cast<int>(type), "input");
    Bytes data;
    if (!viewBytes(env, a.v[2], data)) throw Fail("input: data must be an ArrayBufferView");
    size_t nbytes = bytesOf(static_cast<int>(type), ne);
    if (data.size != nbytes)
      throw Fail("input: " + typeName(static_cast<int>(type)) + " [" + std::to_string(ne[0]) + "," + std::to_string(ne[1]) + "," +
                 std::to_string(ne[2]) + "," + std::to_string(ne[3]) + "] needs " + std::to_string(nbytes) +
                 " bytes of data, got " + std::to_string(data.size));
    g.room();
    ggml_tensor* t = ggml_new_tensor_4d(g.ctx, static_cast<ggml_type>(type), ne[0], ne[1], ne[2], ne[3]);
    ggml_set_input(t);
    g.inputs.emplace_back(t, std::vector<uint8_t>(data.ptr, data.ptr + data.size));
    return jsNumber(env, g.add(t, true));
  });
}

void need(bool ok, const std::string& op, const std::string& msg) {
  if (!ok) throw Fail(op + ": " + msg);
}

void needType(const ggml_tensor* t, std::initializer_list<ggml_type> types, const std::string& op, const char* which) {
  for (auto x : types)
    if (t->type == x) return;
  std::string names;
  for (auto x : types) names += (names.empty() ? "" : "/") + typeName(x);
  throw Fail(op + ": " + which + " " + desc(t) + " must be " + names);
}

float param(const std::vector<double>& p, size_t i, float dflt) { return i < p.size() ? static_cast<float>(p[i]) : dflt; }

int64_t intParam(const std::vector<double>& p, size_t i, const std::string& op, const char* name) {
  if (i >= p.size()) throw Fail(op + ": param " + name + " is missing");
  if (p[i] != std::floor(p[i])) throw Fail(op + ": param " + name + " must be an integer, got " + std::to_string(p[i]));
  return static_cast<int64_t>(p[i]);
}

// Builds one op after checking everything ggml would assert on (and what its CPU kernels require).
ggml_tensor* buildOp(GraphState& g, const std::string& op, const std::vector<ggml_tensor*>& s, const std::vector<double>& p) {
  ggml_context* ctx = g.ctx;
  auto nsrc = [&](size_t lo, size_t hi) {
    if (s.size() < lo || s.size() > hi)
      throw Fail(op + ": expects " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
                 " sources, got " + std::to_string(s.size()));
  };
  // A repacked weight has its own layout: it may only be the weight of a mul_mat.
  for (size_t i = 0; i < s.size(); i++)
    if (g.isExtra(s[i]) && !(op == "mul_mat" && i == 0))
      throw Fail(op + ": source " + std::to_string(i) + " " + desc(s[i]) +
                 " is a repacked weight, usable only as mul_mat's first source; load it with mode \"copy\" or \"map\"");

  if (op == "get_rows") {
    nsrc(2, 2);
    ggml_tensor *a = s[0], *b = s[1];
    needType(b, {GGML_TYPE_I32}, op, "ids");
    // compute() checks the ids before ggml asserts on them, so they must be known then: an input or a persistent
    // tensor, or a view of one.
    const ggml_tensor* leaf = b;
    while (leaf->op == GGML_OP_VIEW || leaf->op == GGML_OP_RESHAPE || leaf->op == GGML_OP_PERMUTE || leaf->op == GGML_OP_TRANSPOSE)
      leaf = leaf->src[0];
    need(leaf->op == GGML_OP_NONE, op, "ids must be a graph input, a persistent tensor or a view of one");
    need(a->ne[2] == b->ne[1] && a->ne[3] == b->ne[2] && b->ne[3] == 1, op,
         "table " + desc(a) + " and ids " + desc(b) + " do not match (need table.ne[2] = ids.ne[1], table.ne[3] = ids.ne[2], ids.ne[3] = 1)");
    need(a->type == GGML_TYPE_F32 || a->type == GGML_TYPE_F16 || a->type == GGML_TYPE_BF16 || ggml_is_quantized(a->type), op,
         "table " + desc(a) + " has a type get_rows cannot read");
    need(a->nb[0] == ggml_type_size(a->type), op, "table " + desc(a) + " rows must be contiguous");
    return ggml_get_rows(ctx, a, b);
  }
  if (op == "add" || op == "mul") {
    nsrc(2, 2);
    ggml_tensor *a = s[0], *b = s[1];
    needType(a, {GGML_TYPE_F32}, op, "a");
    needType(b, {GGML_TYPE_F32}, op, "b");
    need(ggml_can_repeat(b, a), op, "b " + desc(b) + " does not broadcast over a " + desc(a));
    need(a->nb[0] == 4 && b->nb[0] == 4, op, "a " + desc(a) + " and b " + desc(b) + " need contiguous rows (use cont)");
    return op == "add" ? ggml_add(ctx, a, b) : ggml_mul(ctx, a, b);
  }
  if (op == "scale") {
    nsrc(1, 1);
    need(p.size() == 1, op, "params [s] expected");
    needType(s[0], {GGML_TYPE_F32}, op, "a");
    // ggml_scale asserts "padded 1d" (strides exactly dense even over dims of size 1), stricter than contiguous.
    const ggml_tensor* a = s[0];
    need(ggml_is_contiguous(a) && a->nb[0] == 4 && a->nb[2] == a->nb[1] * a->ne[1] && a->nb[3] == a->nb[2] * a->ne[2], op,
         "a " + desc(a) + " must be contiguous (use cont)");
    return ggml_scale(ctx, s[0], param(p, 0, 1));
  }
  if (op == "rms_norm" || op == "norm") {
    nsrc(1, 1);
    need(p.size() == 1, op, "params [eps] expected");
    needType(s[0], {GGML_TYPE_F32}, op, "a");
    need(s[0]->nb[0] == 4, op, "a " + desc(s[0]) + " needs contiguous rows (use cont)");
    return op == "rms_norm" ? ggml_rms_norm(ctx, s[0], param(p, 0, 0)) : ggml_norm(ctx, s[0], param(p, 0, 0));
  }
  if (op == "mul_mat") {
    nsrc(2, 2);
    ggml_tensor *a = s[0], *b = s[1];
    need(validType(a->type) && a->type != GGML_TYPE_I32, op, "a " + desc(a) + " has a type mul_mat cannot use");
    needType(b, {GGML_TYPE_F32}, op, "b");
    need(a->ne[0] == b->ne[0] && b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0, op,  // ggml_can_mul_mat (not exported)

         "a " + desc(a) + " and b " + desc(b) + " do not match (need a.ne[0] = b.ne[0], b.ne[2] a multiple of a.ne[2], b.ne[3] of a.ne[3])");
    need(!ggml_is_transposed(a) && a->nb[0] == ggml_type_size(a->type), op, "a " + desc(a) + " must not be transposed");
    need(b->nb[0] == 4, op, "b " + desc(b) + " needs contiguous rows (use cont)");
    // The repacked kernels (AMX, CPU_REPACK) read b as one contiguous 2-D matrix, as llama.cpp always passes it:
    // a 3-D batch was multiplied out of bounds (heap corruption), though supports_op accepted it.
    need(!g.isExtra(a) || (b->ne[2] == 1 && b->ne[3] == 1 && ggml_is_contiguous(b)), op,
         "the repacked weight " + desc(a) + " needs b as a contiguous 2-D matrix [K, rows]; got " + desc(b) +
             " (reshape it first)");
    ggml_tensor* r = ggml_mul_mat(ctx, a, b);
    if (g.isExtra(a) && !ggml_backend_dev_supports_op(g_cpu.dev, r))
      throw Fail(op + ": the repacked weight " + desc(a) + " cannot multiply b " + desc(b));
    return r;
  }
  if (op == "silu" || op == "gelu" || op == "tanh") {
    nsrc(1, 1);
    needType(s[0], {GGML_TYPE_F32}, op, "a");
    need(ggml_is_contiguous_1(s[0]) && s[0]->nb[0] == 4, op, "a " + desc(s[0]) + " must be contiguous (use cont)");
    return op == "silu" ? ggml_silu(ctx, s[0]) : op == "gelu" ? ggml_gelu(ctx, s[0]) : ggml_tanh(ctx, s[0]);
  }
  if (op == "rope") {
    nsrc(2, 3);
    ggml_tensor *a = s[0], *pos = s[1], *ff = s.size() > 2 ? s[2] : nullptr;
    need(p.size() >= 2 && p.size() <= 9, op, "params [nDims, mode, nCtxOrig?, freqBase?, freqScale?, extFactor?, attnFactor?, betaFast?, betaSlow?] expected");
    int64_t nDims = intParam(p, 0, op, "nDims"), mode = intParam(p, 1, op, "mode");
    needType(a, {GGML_TYPE_F32, GGML_TYPE_F16}, op, "a");
    need(a->nb[0] == ggml_type_size(a->type), op, "a " + desc(a) + " needs contiguous rows");
    need(mode == GGML_ROPE_TYPE_NORMAL || mode == GGML_ROPE_TYPE_NEOX, op,
         "mode must be 0 (NORMAL, interleaved pairs) or 2 (NEOX, halves), got " + std::to_string(mode));
    need(nDims > 0 && nDims % 2 == 0 && nDims <= a->ne[0], op,
         "nDims " + std::to_string(nDims) + " must be even and at most a.ne[0] (" + std::to_string(a->ne[0]) + ")");
    needType(pos, {GGML_TYPE_I32}, op, "pos");
    need(ggml_is_vector(pos) && pos->ne[0] == a->ne[2], op,
         "pos " + desc(pos) + " must be a vector of a.ne[2] = " + std::to_string(a->ne[2]) + " positions (a " + desc(a) + ")");
    if (ff) {
      needType(ff, {GGML_TYPE_F32}, op, "freqFactors");
      need(ff->ne[0] >= nDims / 2 && ggml_is_contiguous(ff), op,
           "freqFactors " + desc(ff) + " needs at least nDims/2 = " + std::to_string(nDims / 2) + " contiguous values");
    }
    return ggml_rope_ext(ctx, a, pos, ff, static_cast<int>(nDims), static_cast<int>(mode),
                         static_cast<int>(param(p, 2, 0)), param(p, 3, 10000.0f), param(p, 4, 1.0f), param(p, 5, 0.0f),
                         param(p, 6, 1.0f), param(p, 7, 32.0f), param(p, 8, 1.0f));
  }
  if (op == "soft_max") {
    nsrc(1, 2);
    need(p.size() <= 2, op, "params [scale, maxBias] expected");
    ggml_tensor *a = s[0], *m = s.size() > 1 ? s[1] : nullptr;
    needType(a, {GGML_TYPE_F32}, op, "a");
    need(ggml_is_contiguous(a), op, "a " + desc(a) + " must be contiguous (use cont)");
    float maxBias = param(p, 1, 0.0f);
    if (m) {
      needType(m, {GGML_TYPE_F32, GGML_TYPE_F16}, op, "mask");
      need(ggml_is_contiguous(m), op, "mask " + desc(m) + " must be contiguous");
      need(m->ne[0] == a->ne[0] && m->ne[1] >= a->ne[1] && a->ne[2] % m->ne[2] == 0 && a->ne[3] % m->ne[3] == 0, op,
           "mask " + desc(m) + " does not fit a " + desc(a) +
               " (need mask.ne[0] = a.ne[0], mask.ne[1] >= a.ne[1], mask.ne[2] and ne[3] dividing a's)");
    } else {
      need(maxBias == 0.0f, op, "maxBias > 0 (ALiBi) needs a mask");
    }
    return ggml_soft_max_ext(ctx, a, m, param(p, 0, 1.0f), maxBias);
  }
  if (op == "reshape") {
    nsrc(1, 1);
    ggml_tensor* a = s[0];
    need(!p.empty() && p.size() <= 4, op, "params must be the new ne (1 to 4 numbers)");
    auto ne = dims(p, a->type, op);
    need(ne[0] * ne[1] * ne[2] * ne[3] == ggml_nelements(a), op,
         "a " + desc(a) + " has " + std::to_string(ggml_nelements(a)) + " elements, the new shape [" + std::to_string(ne[0]) + "," +
             std::to_string(ne[1]) + "," + std::to_string(ne[2]) + "," + std::to_string(ne[3]) + "] has " +
             std::to_string(ne[0] * ne[1] * ne[2] * ne[3]));
    need(ggml_is_contiguous(a), op, "a " + desc(a) + " must be contiguous (use cont)");
    return ggml_reshape_4d(ctx, a, ne[0], ne[1], ne[2], ne[3]);
  }
  if (op == "view") {
    nsrc(1, 1);
    ggml_tensor* a = s[0];
    need(p.size() == 8, op, "params [ne0, ne1, ne2, ne3, nb1, nb2, nb3, offsetBytes] expected");
    auto ne = dims(std::vector<double>(p.begin(), p.begin() + 4), a->type, op);
    int64_t nb[4] = {static_cast<int64_t>(ggml_type_size(a->type)), intParam(p, 4, op, "nb1"), intParam(p, 5, op, "nb2"),
                     intParam(p, 6, op, "nb3")};
    int64_t off = intParam(p, 7, op, "offsetBytes");
    need(nb[1] >= 0 && nb[2] >= 0 && nb[3] >= 0 && off >= 0, op, "strides and offset must not be negative");
    need(nb[1] < (int64_t(1) << 50) && nb[2] < (int64_t(1) << 50) && nb[3] < (int64_t(1) << 50) && off < (int64_t(1) << 50), op,
         "strides and offset must be below 2^50");
    // Last byte reached, within a itself and (as ggml checks) within its source's contiguous size.
    unsigned __int128 extent = ggml_row_size(a->type, ne[0]);
    for (int i = 1; i < 4; i++) extent += static_cast<unsigned __int128>(ne[i] - 1) * static_cast<uint64_t>(nb[i]);
    uint64_t dense = ggml_row_size(a->type, ne[0]) * ne[1] * ne[2] * ne[3];
    const ggml_tensor* root = a->view_src ? a->view_src : a;
    unsigned __int128 rootOff = static_cast<uint64_t>(off) + (a->view_src ? a->view_offs : 0);
    need(static_cast<uint64_t>(off) + extent <= ggml_nbytes(a) && rootOff + dense <= ggml_nbytes(root) &&
             rootOff + extent <= ggml_nbytes(root),
         op,
         "the view [" + std::to_string(ne[0]) + "," + std::to_string(ne[1]) + "," + std::to_string(ne[2]) + "," + std::to_string(ne[3]) +
             "] nb [" + std::to_string(nb[1]) + "," + std::to_string(nb[2]) + "," + std::to_string(nb[3]) + "] at offset " +
             std::to_string(off) + " reaches past the end of a " + desc(a) + " (" + std::to_string(ggml_nbytes(a)) + " bytes)");
    return ggml_view_4d(ctx, a, ne[0], ne[1], ne[2], ne[3], nb[1], nb[2], nb[3], off);
  }
  if (op == "permute") {
    nsrc(1, 1);
    need(p.size() == 4, op, "params [p0, p1, p2, p3] expected");
    int ax[4];
    bool seen[4] = {false, false, false, false};
    for (int i = 0; i < 4; i++) {
      int64_t v = intParam(p, i, op, "axis");
      need(v >= 0 && v < 4 && !seen[v], op, "axes must be a permutation of 0, 1, 2, 3");
      seen[v] = true;
      ax[i] = static_cast<int>(v);
    }
    return ggml_permute(ctx, s[0], ax[0], ax[1], ax[2], ax[3]);
  }
  if (op == "cont") {
    nsrc(1, 1);
    need(p.empty(), op, "takes no params");
    needType(s[0], {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_I32}, op, "a");
    return ggml_cont(ctx, s[0]);
  }
  if (op == "transpose") {
    nsrc(1, 1);
    need(p.empty(), op, "takes no params");
    return ggml_transpose(ctx, s[0]);
  }
  if (op == "cpy") {
    nsrc(2, 2);
    ggml_tensor *a = s[0], *b = s[1];
    needType(a, {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16}, op, "a");
    needType(b, {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16}, op, "b");
    need(ggml_nelements(a) == ggml_nelements(b), op,
         "a " + desc(a) + " has " + std::to_string(ggml_nelements(a)) + " elements, b " + desc(b) + " has " + std::to_string(ggml_nelements(b)));
    return ggml_cpy(ctx, a, b);
  }
  throw Fail("op: unknown op \"" + op + "\"");
}

napi_value graphOp(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 3);
    GraphState& g = graphOf(env, a.self);
    if (a.v.size() < 2) throw Fail("op(name, srcs, params?): name and srcs expected");
    std::string name = string(env, a.v[0], "op: name");
    bool isArray = false;
    NAPI(napi_is_array(env, a.v[1], &isArray));
    if (!isArray) throw Fail(name + ": srcs must be an array of node ids");
    uint32_t n;
    NAPI(napi_get_array_length(env, a.v[1], &n));
    std::vector<ggml_tensor*> srcs;
    for (uint32_t i = 0; i < n; i++) {
      napi_value e;
      NAPI(napi_get_element(env, a.v[1], i, &e));
      srcs.push_back(g.node(env, e, name + ": srcs[" + std::to_string(i) + "]"));
    }
    std::vector<double> params;
    if (a.v.size() > 2 && typeOf(env, a.v[2]) != napi_undefined) params = numbers(env, a.v[2], name + ": params");
    g.room();
    ggml_tensor* t = buildOp(g, name, srcs, params);
    return jsNumber(env, g.add(t, true));
  });
}

napi_value graphShape(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    GraphState& g = graphOf(env, a.self);
    if (a.v.empty()) throw Fail("shape(id): id is missing");
    ggml_tensor* t = g.node(env, a.v[0], "shape");
    return jsNumberArray(env, {static_cast<double>(t->ne[0]), static_cast<double>(t->ne[1]), static_cast<double>(t->ne[2]),
                               static_cast<double>(t->ne[3])});
  });
}

napi_value graphExpand(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    GraphState& g = graphOf(env, a.self);
    if (a.v.empty()) throw Fail("expand(id): id is missing");
    int64_t id = integer(env, a.v[0], "expand: id");
    ggml_tensor* t = g.node(env, a.v[0], "expand");
    if (g.own[id]) {
      // Expanded nodes stay readable: the allocator neither frees nor reuses outputs.
      ggml_set_output(t);
      if (t->view_src && !g.isRef(t->view_src)) ggml_set_output(t->view_src);
    }
    ggml_build_forward_expand(g.gf, t);
    g.expanded++;
    return jsUndefined(env);
  });
}

napi_value graphCompute(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    GraphState& g = graphOf(env, args(env, info, 0).self);
    BackendState& b = *g.backend;
    if (g.expanded == 0 || ggml_graph_n_nodes(g.gf) == 0) throw Fail("compute: nothing to compute (expand() a node first)");
    for (auto& r : g.refs)
      if (r->freed) throw Fail("compute: a tensor this graph uses was freed");
    // Drop the previous allocation of this graph's own tensors (the buffer may have moved since).
    for (size_t i = 0; i < g.nodes.size(); i++)
      if (g.own[i]) {
        g.nodes[i]->data = nullptr;
        g.nodes[i]->buffer = nullptr;
      }
    g.computedAt = 0;
    // The allocator reuses its last assignments when node counts and sizes fit, even for another graph of the
    // same size: plan afresh whenever the graph changes (the buffer only grows).
    if (b.lastReserved != g.serial) {
      b.lastReserved = 0;
      if (!ggml_gallocr_reserve(b.galloc, g.gf)) throw Fail("compute: cannot allocate the compute buffer. " + g_lastLog);
      b.lastReserved = g.serial;
    }
    if (!ggml_gallocr_alloc_graph(b.galloc, g.gf)) {
      b.lastReserved = 0;
      throw Fail("compute: cannot allocate the graph. " + g_lastLog);
    }
    for (auto& [t, data] : g.inputs)
      if (t->buffer) ggml_backend_tensor_set(t, data.data(), 0, data.size());  // (inputs no expanded node uses are not allocated)
    // get_rows asserts its ids are in range while computing: check them first (they are inputs or views of them).
    for (int i = 0; i < ggml_graph_n_nodes(g.gf); i++) {
      ggml_tensor* n = ggml_graph_node(g.gf, i);
      if (n->op != GGML_OP_GET_ROWS) continue;
      const ggml_tensor* ids = n->src[1];
      const int64_t rows = n->src[0]->ne[1];
      for (int64_t i2 = 0; i2 < ids->ne[2]; i2++)
        for (int64_t i1 = 0; i1 < ids->ne[1]; i1++)
          for (int64_t i0 = 0; i0 < ids->ne[0]; i0++) {
            int32_t v;
            memcpy(&v, static_cast<const char*>(ids->data) + i0 * ids->nb[0] + i1 * ids->nb[1] + i2 * ids->nb[2], 4);
            if (v < 0 || v >= rows)
              throw Fail("get_rows: id " + std::to_string(v) + " is out of range for a table of " + std::to_string(rows) + " rows");
          }
    }
    ggml_status st = ggml_backend_graph_compute(b.be, g.gf);
    if (st != GGML_STATUS_SUCCESS) throw Fail("compute: ggml failed with status " + std::to_string(st) + ". " + g_lastLog);
    g.computedAt = ++b.generation;
    g.account(env);
    return jsUndefined(env);
  });
}

float toF32(const void* p, ggml_type t) {
  if (t == GGML_TYPE_F32) {
    float f;
    memcpy(&f, p, 4);
    return f;
  }
  if (t == GGML_TYPE_F16) return ggml_fp16_to_fp32(*static_cast<const ggml_fp16_t*>(p));
  if (t == GGML_TYPE_BF16) return ggml_bf16_to_fp32(*static_cast<const ggml_bf16_t*>(p));
  int32_t i;
  memcpy(&i, p, 4);
  return static_cast<float>(i);
}

napi_value graphRead(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    GraphState& g = graphOf(env, a.self);
    if (a.v.empty()) throw Fail("read(id): id is missing");
    int64_t id = integer(env, a.v[0], "read: id");
    ggml_tensor* t = g.node(env, a.v[0], "read");
    if (g.computedAt == 0) throw Fail("read: the graph has not been computed");
    for (auto& r : g.refs)
      if (r->freed) throw Fail("read: a tensor this graph uses was freed");
    if (g.computedAt != g.backend->generation)
      throw Fail("read: another graph was computed since on this backend and its buffer holds other values now; read before computing another graph");
    // Readable: persistent tensors, inputs, expanded nodes (outputs) and views of those; any other node's memory
    // may have been reused by a later node.
    const int keep = GGML_TENSOR_FLAG_OUTPUT | GGML_TENSOR_FLAG_INPUT;
    bool readable = !g.own[id] || (t->flags & keep);
    if (!readable && t->view_src) {
      readable = (t->view_src->flags & keep) != 0;
      if (g.isRef(t->view_src)) readable = true;
    }
    if (!readable) throw Fail("read: node " + std::to_string(id) + " was not passed to expand(); only expanded nodes can be read");
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16 && t->type != GGML_TYPE_BF16)
      throw Fail("read: node " + std::to_string(id) + " " + desc(t) + " is not F32/F16/BF16");
    if (g.isExtra(t)) throw Fail("read: node " + std::to_string(id) + " is a repacked weight");
    if (!t->data) throw Fail("read: node " + std::to_string(id) + " has no data");
    size_t n = ggml_nelements(t);
    napi_value ab, arr;
    void* out = nullptr;
    NAPI(napi_create_arraybuffer(env, n * 4, &out, &ab));
    float* f = static_cast<float*>(out);
    const char* base = static_cast<const char*>(t->data);
    size_t k = 0;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
      for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
        for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
          const char* row = base + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
          if (t->type == GGML_TYPE_F32 && t->nb[0] == 4) {
            memcpy(f + k, row, t->ne[0] * 4);
            k += t->ne[0];
          } else {
            for (int64_t i0 = 0; i0 < t->ne[0]; i0++) f[k++] = toF32(row + i0 * t->nb[0], t->type);
          }
        }
    NAPI(napi_create_typedarray(env, napi_float32_array, n, ab, 0, &arr));
    return arr;
  });
}

napi_value graphFree(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Holder* h = holder(env, args(env, info, 0).self);
    if (h->graph) h->graph->release(env);
    return jsUndefined(env);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Module: init(binsDir) and backend(threads, threadpool)

std::mutex g_initLock;  // worker threads may load the addon at once

napi_value init(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 1);
    std::lock_guard<std::mutex> lock(g_initLock);
    if (!g_cpu.ready) {
      if (a.v.empty()) throw Fail("init(binsDir): binsDir is missing");
      std::string dir = string(env, a.v[0], "init: binsDir");
      // node-llama-cpp may have loaded ggml's backends in this process already (same libraries): then use its
      // CPU device and leave its log callback alone.
      g_cpu.dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
      if (!g_cpu.dev) {
        ggml_log_set(quietLog, nullptr);
        // The CPU backend is a set of variants (haswell, skylakex, sapphirerapids, ...): the loader scores each
        // against this CPU and loads the best one.
        ggml_backend_load_all_from_path(dir.c_str());
        g_cpu.dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
      }
      if (!g_cpu.dev) throw Fail("no ggml CPU backend could be loaded from " + dir + ". " + g_lastLog);
      g_cpu.reg = ggml_backend_dev_backend_reg(g_cpu.dev);
      auto proc = [&](const char* name) { return ggml_backend_reg_get_proc_address(g_cpu.reg, name); };
      g_cpu.setThreads = reinterpret_cast<ggml_backend_set_n_threads_t>(proc("ggml_backend_set_n_threads"));
      g_cpu.threadpoolNew = reinterpret_cast<decltype(&ggml_threadpool_new)>(proc("ggml_threadpool_new"));
      g_cpu.threadpoolFree = reinterpret_cast<decltype(&ggml_threadpool_free)>(proc("ggml_threadpool_free"));
      g_cpu.setThreadpool = reinterpret_cast<decltype(&ggml_backend_cpu_set_threadpool)>(proc("ggml_backend_cpu_set_threadpool"));
      auto extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(proc("ggml_backend_dev_get_extra_bufts"));
      if (extra)
        for (auto p = extra(g_cpu.dev); p && *p; p++) g_cpu.extra.push_back(*p);
      if (!g_cpu.setThreads) throw Fail("the ggml CPU backend does not export ggml_backend_set_n_threads");
      // Weights repacked into ggml's buffers are large aligned allocations. glibc raises its mmap threshold to the
      // largest block freed, so after one engine is disposed the next engine's buffers come from the heap and are
      // kept after their dispose: measured, RSS grew by the repacked bytes on every open and dispose of a Q4_0
      // TinyLlama (743 -> 1378 MiB after four). A fixed threshold keeps every allocation above 256 KiB in its
      // own mapping, returned to the system when freed.
      mallopt(M_MMAP_THRESHOLD, 256 * 1024);
      g_cpu.ready = true;
    }
    napi_value out, names;
    NAPI(napi_create_object(env, &out));
    NAPI(napi_set_named_property(env, out, "device", jsString(env, ggml_backend_dev_description(g_cpu.dev))));
    NAPI(napi_create_array_with_length(env, g_cpu.extra.size(), &names));
    for (size_t i = 0; i < g_cpu.extra.size(); i++)
      NAPI(napi_set_element(env, names, i, jsString(env, ggml_backend_buft_name(g_cpu.extra[i]))));
    NAPI(napi_set_named_property(env, out, "extraBufferTypes", names));
    NAPI(napi_set_named_property(env, out, "threadpool",
                                 [&] {
                                   napi_value v;
                                   NAPI(napi_get_boolean(env, g_cpu.threadpoolNew && g_cpu.setThreadpool, &v));
                                   return v;
                                 }()));
    return out;
  });
}

napi_value createBackend(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a = args(env, info, 2);
    if (!g_cpu.ready) throw Fail("backend: init() was not called");
    if (a.v.empty()) throw Fail("backend(threads): threads is missing");
    int64_t threads = integer(env, a.v[0], "backend: threads");
    if (threads < 1 || threads > 512) throw Fail("backend: threads must be 1 to 512, got " + std::to_string(threads));
    bool pool = true;
    if (a.v.size() > 1 && typeOf(env, a.v[1]) == napi_boolean) NAPI(napi_get_value_bool(env, a.v[1], &pool));
    auto b = std::make_shared<BackendState>();
    b->threads = static_cast<int>(threads);
    b->be = ggml_backend_dev_init(g_cpu.dev, nullptr);
    if (!b->be) throw Fail("backend: ggml could not start a CPU backend");
    g_cpu.setThreads(b->be, b->threads);
    if (pool && g_cpu.threadpoolNew && g_cpu.setThreadpool) {
      // Without a pool of its own the CPU backend starts and joins its threads on every compute.
      ggml_threadpool_params tpp = ggml_threadpool_params_default(b->threads);
      b->tp = g_cpu.threadpoolNew(&tpp);
      if (!b->tp) throw Fail("backend: ggml could not start a threadpool of " + std::to_string(threads) + " threads");
      g_cpu.setThreadpool(b->be, b->tp);
    }
    b->galloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(b->be));
    if (!b->galloc) throw Fail("backend: ggml_gallocr_new failed");
    auto* h = new Holder();
    h->backend = b;
    return instance(env, ctors(env)->backend, h);
  });
}

napi_ref defineClass(napi_env env, const char* name, std::initializer_list<std::pair<const char*, napi_callback>> methods) {
  std::vector<napi_property_descriptor> props;
  for (auto& [n, fn] : methods) props.push_back({n, nullptr, fn, nullptr, nullptr, nullptr, napi_default, nullptr});
  napi_value cls;
  NAPI(napi_define_class(env, name, NAPI_AUTO_LENGTH, construct, nullptr, props.size(), props.data(), &cls));
  napi_ref ref;
  NAPI(napi_create_reference(env, cls, 1, &ref));
  return ref;
}

napi_value moduleInit(napi_env env, napi_value exports) {
  return guarded(env, [&] {
    auto* c = new Ctors();
    NAPI(napi_set_instance_data(env, c, [](napi_env, void* p, void*) { delete static_cast<Ctors*>(p); }, nullptr));
    c->backend = defineClass(env, "GgmlBackend",
                             {{"mapFile", backendMapFile},
                              {"weight", backendWeight},
                              {"tensor", backendTensor},
                              {"graph", backendGraph},
                              {"stats", backendStats},
                              {"dispose", backendDispose}});
    c->map = defineClass(env, "GgmlMap", {{"close", mapClose}, {"firstNonFinite", mapFirstNonFinite}});
    c->tensor = defineClass(env, "GgmlTensor", {{"free", tensorFree}});
    c->graph = defineClass(env, "GgmlGraph",
                           {{"ref", graphRef},
                            {"input", graphInput},
                            {"op", graphOp},
                            {"shape", graphShape},
                            {"expand", graphExpand},
                            {"compute", graphCompute},
                            {"read", graphRead},
                            {"free", graphFree}});
    napi_property_descriptor fns[] = {
        {"init", nullptr, init, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"backend", nullptr, createBackend, nullptr, nullptr, nullptr, napi_default, nullptr},
    };
    NAPI(napi_define_properties(env, exports, 2, fns));
    return exports;
  });
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, moduleInit)
