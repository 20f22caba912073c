// diffreg_torch: a thin N-API table over libtorch (ATen + autograd). All model code lives in TypeScript
// (src/engine); this addon only converts arguments, calls ATen and maps errors.
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <sched.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include <cstdlib>
#include <thread>

#include "common.h"

namespace dt {
namespace {

using Info = const Napi::CallbackInfo&;

// ---------------------------------------------------------------- threads
int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

// Debian's OpenBLAS (libopenblas0-pthread) keeps a thread pool of its own, one thread per core, beside
// libtorch's OpenMP threads; libtorch calls BLAS inside its parallel loops (2-D convolutions unfold and
// multiply per image), so on 2 cores four busy threads shared two cores. Measured here with 2 OpenMP
// threads, BLAS on 2 threads → 1: conv2d 32→32 channels at 2×128² 150 → 52 ms; LDM-Morph per 2-D pair
// 0.15 s mean (0.05 s with spikes to 0.7 s) → 0.07 s steady; DiffuseReg DDIM-10 + refinement on an
// ACDC pair 13.3 → 9.3 s; MedDIFT register of an ACDC pair 29.1 → 22.4 s. A lone large matrix product
// loses its second thread (4096×512·512×4096: 86 → 162 ms); conv3d (oneDNN) and our attention kernel do
// not use BLAS (87 vs 85 ms). So BLAS runs on one thread; parallelism comes from libtorch's threads.
// The symbol is looked up in the BLAS libtorch loaded (libblas.so.3); another BLAS is left alone.
void single_threaded_blas() {
  void* blas = dlopen("libblas.so.3", RTLD_LAZY | RTLD_NOLOAD);
  if (!blas) return;
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(blas, "openblas_set_num_threads"))) set(1);
  dlclose(blas);
}

void set_threads(int n) {
  at::set_num_threads(n);
  single_threaded_blas();
}

// libtorch defaults to one thread on these machines; use every available core unless DIFFREG_THREADS says.
void init_threads() {
  int n = available_cores();
  if (const char* env = std::getenv("DIFFREG_THREADS")) {
    int v = std::atoi(env);
    if (v > 0) n = v;
  }
  set_threads(n);
}

Napi::Value set_num_threads(Info info) {
  return guard(info, [&]() -> Napi::Value {
    set_threads(static_cast<int>(I(info[0])));
    return info.Env().Undefined();
  });
}
Napi::Value get_num_threads(Info info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

Napi::Value info_(Info info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("version", TORCH_VERSION);
  o.Set("cudaAvailable", at::hasCUDA());
  o.Set("cores", available_cores());
  return o;
}

// ---------------------------------------------------------------- memory
Napi::Value release(Info info) {
  return guard(info, [&]() -> Napi::Value {
    set_tensor(info.Env(), holder(info[0]), at::Tensor());
    return info.Env().Undefined();
  });
}

// Points an existing handle at another tensor (Module.to(dtype) keeps its parameter objects).
Napi::Value assign(Info info) {
  return guard(info, [&]() -> Napi::Value {
    set_tensor(info.Env(), holder(info[0]), T(info[1]));
    return info.Env().Undefined();
  });
}

Napi::Value memory(Info info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("handles", static_cast<double>(live_handle_count()));
  o.Set("bytes", static_cast<double>(reported_external_bytes()));
  o.Set("peakBytes", static_cast<double>(peak_external_bytes()));
  o.Set("cachedBytes", static_cast<double>(cached_block_bytes()));
  if (info.Length() > 0 && info[0].ToBoolean()) reset_peak_external_bytes();
  return o;
}

// Returns free memory to the OS: the large blocks our allocator caches (allocator.cc), and free heap
// pages — glibc keeps freed blocks of a few hundred KB in its arenas for reuse, so RSS stays at its
// high-water mark after a burst of medium-sized tensors.
Napi::Value trim_memory(Info info) {
  bool released = release_cached_blocks() > 0;
#ifdef __GLIBC__
  released = (malloc_trim(0) == 1) || released;
#endif
  return Napi::Boolean::New(info.Env(), released);
}

// ---------------------------------------------------------------- generators
void finalize_generator(Napi::BasicEnv, at::Generator* g) { delete g; }

Napi::Value generator_new(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto* g = new at::Generator(at::detail::createCPUGenerator(static_cast<uint64_t>(I(info[0]))));
    return Napi::External<at::Generator>::New(info.Env(), g, finalize_generator);
  });
}
Napi::Value generator_default(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto* g = new at::Generator(at::detail::getDefaultCPUGenerator());
    return Napi::External<at::Generator>::New(info.Env(), g, finalize_generator);
  });
}
Napi::Value generator_seed(Info info) {
  return guard(info, [&]() -> Napi::Value {
    at::Generator g = *gen(info[0]);
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(static_cast<uint64_t>(I(info[1])));
    return info.Env().Undefined();
  });
}
Napi::Value generator_get_state(Info info) {
  return guard(info, [&]() -> Napi::Value {
    at::Generator g = *gen(info[0]);
    at::Tensor s;
    {
      std::lock_guard<std::mutex> lock(g.mutex());
      s = g.get_state();
    }
    return wrap(info.Env(), s);
  });
}
Napi::Value generator_set_state(Info info) {
  return guard(info, [&]() -> Napi::Value {
    at::Generator g = *gen(info[0]);
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(T(info[1]));
    return info.Env().Undefined();
  });
}

// ---------------------------------------------------------------- autograd
Napi::Value set_grad_enabled(Info info) {
  return guard(info, [&]() -> Napi::Value {
    bool before = at::GradMode::is_enabled();
    at::GradMode::set_enabled(B(info[0]));
    return Napi::Boolean::New(info.Env(), before);
  });
}
Napi::Value is_grad_enabled(Info info) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

Napi::Value requires_grad_(Info info) {
  return guard(info, [&]() -> Napi::Value {
    T(info[0]).requires_grad_(B(info[1]));
    return info.Env().Undefined();
  });
}
Napi::Value requires_grad(Info info) {
  return guard(info, [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info[0]).requires_grad()); });
}
Napi::Value is_leaf(Info info) {
  return guard(info, [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info[0]).is_leaf()); });
}
Napi::Value retain_grad(Info info) {
  return guard(info, [&]() -> Napi::Value {
    T(info[0]).retain_grad();
    return info.Env().Undefined();
  });
}
Napi::Value grad(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor& g = T(info[0]).grad();
    return g.defined() ? wrap(info.Env(), g) : info.Env().Null();
  });
}
// set_grad(x, g|null): null drops the gradient (zeroGrad frees memory as PyTorch's set_to_none does).
Napi::Value set_grad(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor& x = T(info[0]);
    if (absent(info[1])) {
      x.mutable_grad().reset();
    } else {
      x.mutable_grad() = T(info[1]);
    }
    return info.Env().Undefined();
  });
}

// backward(x, gradient|null, retain_graph, create_graph): sync and async (backward is the heavy half of a
// training step).
Work backward(Info info) {
  at::Tensor x = T(info[0]);
  c10::optional<at::Tensor> g = optT(info[1]);
  bool retain = B(info[2]), create = B(info[3]);
  return [=]() {
    x.backward(g ? *g : at::Tensor(), retain, create);
    return at::Tensor();
  };
}

// autograd_grad(outputs, inputs, grad_outputs|null, retain_graph, create_graph, allow_unused) → array with
// null for inputs that do not take part (when allowed).
Napi::Value autograd_grad(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto outputs = tensors(info[0]), inputs = tensors(info[1]);
    std::vector<at::Tensor> grad_outputs;
    if (!absent(info[2])) grad_outputs = tensors(info[2]);
    bool create = B(info[4]);
    auto result =
        torch::autograd::grad(outputs, inputs, grad_outputs, c10::optional<bool>(B(info[3])), create, B(info[5]));
    Napi::Env env = info.Env();
    auto a = Napi::Array::New(env, result.size());
    for (size_t i = 0; i < result.size(); i++) {
      a.Set(static_cast<uint32_t>(i), result[i].defined() ? wrap(env, result[i]) : env.Null());
    }
    return a;
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  init_threads();
  install_allocator();
  def<set_num_threads>(env, exports, "set_num_threads");
  def<get_num_threads>(env, exports, "get_num_threads");
  def<info_>(env, exports, "info");
  def<release>(env, exports, "release");
  def<assign>(env, exports, "assign");
  def<memory>(env, exports, "memory");
  def<trim_memory>(env, exports, "trim_memory");
  def<generator_new>(env, exports, "generator_new");
  def<generator_default>(env, exports, "generator_default");
  def<generator_seed>(env, exports, "generator_seed");
  def<generator_get_state>(env, exports, "generator_get_state");
  def<generator_set_state>(env, exports, "generator_set_state");
  def<set_grad_enabled>(env, exports, "set_grad_enabled");
  def<is_grad_enabled>(env, exports, "is_grad_enabled");
  def<requires_grad_>(env, exports, "requires_grad_");
  def<requires_grad>(env, exports, "requires_grad");
  def<is_leaf>(env, exports, "is_leaf");
  def<retain_grad>(env, exports, "retain_grad");
  def<grad>(env, exports, "grad");
  def<set_grad>(env, exports, "set_grad");
  def<sync_op<backward>>(env, exports, "backward");
  def<async_op<backward>>(env, exports, "backward_async");
  def<autograd_grad>(env, exports, "autograd_grad");
  register_tensor_ops(env, exports);
  register_nn_ops(env, exports);
  register_search_ops(env, exports);
  register_registration_ops(env, exports);
  register_descriptor_ops(env, exports);
  register_loss_ops(env, exports);
  return exports;
}

}  // namespace
}  // namespace dt

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return dt::Init(env, exports); }

NODE_API_MODULE(diffreg_torch, InitModule)
