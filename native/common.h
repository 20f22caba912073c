// Shared pieces of the addon: tensor handles, argument conversion, the error guard and the async worker.
//
// A tensor crosses into JavaScript as a Napi::External<Holder>. The holder owns one reference to an
// at::Tensor; `release` drops it at once (dispose), the External's finalizer drops it when V8 collects
// the handle (safety net). Memory held by live handles is reported to V8 so that the collector sees it.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dt {

// Hot loops of the fused kernels: compiled for AVX-512, AVX2 and baseline x86-64 (picked when the addon
// loads) and optimised at -O3, where GCC vectorises loops of unknown trip count.
#define DT_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))

// acc[i] += v[i] for i < n: the running sums of the box filters (descriptors, local NCC). Defined once
// (ops_descriptors.cc); its rows are whole image rows or planes, so the call costs nothing measurable.
void add_into(float* __restrict acc, const float* v, int64_t n);

struct Holder {
  at::Tensor t;
  int64_t bytes = 0;  // what was reported to V8 for this handle
};

// Argument errors raised while converting JS values; the guard turns them into JS Errors.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Napi::Value wrap(Napi::Env env, at::Tensor t);
void release_view_later(napi_env env, napi_ref ref);
void release_views(napi_env env);
int64_t live_handle_count();
int64_t reported_external_bytes();
int64_t peak_external_bytes();
void reset_peak_external_bytes();
void set_tensor(Napi::Env env, Holder* h, at::Tensor t);
Holder* holder(const Napi::Value& v);
const at::Tensor& T(const Napi::Value& v);
c10::optional<at::Tensor> optT(const Napi::Value& v);
std::vector<at::Tensor> tensors(const Napi::Value& v);
std::vector<int64_t> ints(const Napi::Value& v);
std::vector<double> doubles(const Napi::Value& v);
int64_t I(const Napi::Value& v);
double D(const Napi::Value& v);
bool B(const Napi::Value& v);
std::string S(const Napi::Value& v);
bool absent(const Napi::Value& v);
at::Scalar scalar(const Napi::Value& v);
at::ScalarType dtype_of(int64_t code);
int64_t dtype_code(at::ScalarType t);
c10::optional<at::Generator> gen(const Napi::Value& v);
Napi::Array wrap_all(Napi::Env env, const std::vector<at::Tensor>& ts);
Napi::Value throw_error(Napi::Env env, const std::string& message);
std::string first_line(const char* what);

// Calls `body` and maps libtorch's c10::Error and any std::exception to a JS Error with the first line of
// the message, so that no C++ exception ever reaches N-API (which would abort the process).
template <typename Body>
Napi::Value guard(const Napi::CallbackInfo& info, Body body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return throw_error(info.Env(), first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return throw_error(info.Env(), first_line(e.what()));
  }
}

// Entry point for an op returning one tensor.
using TensorFn = at::Tensor (*)(const Napi::CallbackInfo&);
template <TensorFn F>
Napi::Value tensor_op(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value { return wrap(info.Env(), F(info)); });
}

// Entry point for an in-place op: returns undefined; JS returns the receiver.
using VoidFn = void (*)(const Napi::CallbackInfo&);
template <VoidFn F>
Napi::Value void_op(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    F(info);
    return info.Env().Undefined();
  });
}

// Heavy ops are written as a "prepare" step that converts the JS arguments on the main thread and
// returns the computation as a closure. The synchronous entry runs it at once; the asynchronous entry
// runs it on libuv's thread pool (Napi::AsyncWorker) and settles a Promise, so the event loop keeps
// running. The closure holds its own references to the input tensors, so disposing them in JS while the
// work runs is safe; mutating them in place meanwhile is a data race and must be avoided by the caller.
using Work = std::function<at::Tensor()>;
using PrepareFn = Work (*)(const Napi::CallbackInfo&);

Napi::Value run_async(const Napi::CallbackInfo& info, Work work);

template <PrepareFn P>
Napi::Value sync_op(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value {
    at::Tensor out = P(info)();
    return out.defined() ? wrap(info.Env(), out) : info.Env().Undefined();
  });
}

template <PrepareFn P>
Napi::Value async_op(const Napi::CallbackInfo& info) {
  return guard(info, [&]() -> Napi::Value { return run_async(info, P(info)); });
}

using Exports = Napi::Object;
void register_tensor_ops(Napi::Env env, Exports exports);
void register_nn_ops(Napi::Env env, Exports exports);
void register_search_ops(Napi::Env env, Exports exports);
// allocator.cc: libtorch's CPU allocator for large blocks (huge pages, a bounded cache of freed blocks).
void install_allocator();
size_t release_cached_blocks();
size_t cached_block_bytes();
// attention.cc: softmax(q·kᵀ·scale)·v for float32 (..., L, E), (..., S, E), (..., S, Ev) without autograd and
// Ev a multiple of 16; `fused_attention_applies` says whether the kernel takes these inputs.
bool fused_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);
void register_registration_ops(Napi::Env env, Exports exports);
void register_descriptor_ops(Napi::Env env, Exports exports);
void register_loss_ops(Napi::Env env, Exports exports);

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void def(Napi::Env env, Exports exports, const char* name) {
  exports.Set(name, Napi::Function::New<F>(env, name));
}

}  // namespace dt
