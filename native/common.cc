#include "common.h"

#include <atomic>
#include <mutex>
#include <cmath>
#include <cstring>

namespace dt {

namespace {
std::atomic<int64_t> live_handles{0};
std::atomic<int64_t> reported_bytes{0};
// High-water mark of reported_bytes since the last reset (memory tests and benchmarks).
std::atomic<int64_t> peak_bytes{0};
std::atomic<int64_t> unreported{0};
constexpr int64_t kReportStep = 1 << 20;

// What a handle adds to V8's external-memory account. A view counts at most its own extent, so that a
// tensor split into many chunks is not counted many times over, and an expanded view counts no more than
// the storage it reads.
int64_t bytes_of(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  int64_t own = static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  int64_t storage = static_cast<int64_t>(t.storage().nbytes());
  return own < storage ? own : storage;
}

void account(Napi::BasicEnv env, Holder* h, const at::Tensor& t) {
  int64_t before = h->bytes;
  h->bytes = bytes_of(t);
  if (h->t.defined() != t.defined()) live_handles += t.defined() ? 1 : -1;
  int64_t delta = h->bytes - before;
  if (delta == 0) return;
  int64_t now = reported_bytes += delta;
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
  // Telling V8 costs about a microsecond, as much as a small op: batch the changes in 1 MiB steps.
  int64_t pending = unreported += delta;
  if (pending >= kReportStep || pending <= -kReportStep) {
    int64_t take = unreported.exchange(0);
    if (take != 0) Napi::MemoryManagement::AdjustExternalMemory(env, take);
  }
}

// Runs inside garbage collection (a basic finalizer): only C++ work and GC-safe N-API calls here.
void finalize(Napi::BasicEnv env, Holder* h) {
  account(env, h, at::Tensor());
  delete h;
}

// References to JS arrays behind zero-copy tensors (see from_view in ops_tensor.cc). Their storage can
// die during garbage collection or on a pool thread, where deleting a reference is not allowed, so
// releases are queued and done by the JS thread at its next tensor creation.
struct ViewRef {
  napi_env env;
  napi_ref ref;
};
std::mutex pending_mu;
std::vector<ViewRef> pending;
std::atomic<bool> has_pending{false};
}  // namespace

void release_view_later(napi_env env, napi_ref ref) {
  std::lock_guard<std::mutex> lock(pending_mu);
  pending.push_back({env, ref});
  has_pending = true;
}

void release_views(napi_env env) {
  if (!has_pending.load()) return;
  std::vector<ViewRef> mine;
  {
    std::lock_guard<std::mutex> lock(pending_mu);
    auto keep = pending.begin();
    for (auto& r : pending) {
      if (r.env == env) {
        mine.push_back(r);
      } else {
        *keep++ = r;
      }
    }
    pending.erase(keep, pending.end());
    has_pending = !pending.empty();
  }
  for (auto& r : mine) napi_delete_reference(r.env, r.ref);
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  release_views(env);
  auto* h = new Holder();
  account(env, h, t);
  h->t = std::move(t);
  return Napi::External<Holder>::New(env, h, finalize);
}

void set_tensor(Napi::Env env, Holder* h, at::Tensor t) {
  account(env, h, t);
  h->t = std::move(t);
}

int64_t live_handle_count() { return live_handles.load(); }
int64_t reported_external_bytes() { return reported_bytes.load(); }
int64_t peak_external_bytes() { return peak_bytes.load(); }
void reset_peak_external_bytes() { peak_bytes.store(reported_bytes.load()); }

Holder* holder(const Napi::Value& v) {
  if (!v.IsExternal()) throw ArgError("expected a tensor handle");
  return v.As<Napi::External<Holder>>().Data();
}

const at::Tensor& T(const Napi::Value& v) {
  Holder* h = holder(v);
  if (!h->t.defined()) throw ArgError("tensor was disposed");
  return h->t;
}

std::string S(const Napi::Value& v) {
  if (!v.IsString()) throw ArgError("expected a string");
  return v.As<Napi::String>().Utf8Value();
}

bool absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

c10::optional<at::Tensor> optT(const Napi::Value& v) {
  if (absent(v)) return c10::nullopt;
  return T(v);
}

std::vector<at::Tensor> tensors(const Napi::Value& v) {
  if (!v.IsArray()) throw ArgError("expected an array of tensors");
  auto a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(T(a.Get(i)));
  return out;
}

template <typename V>
std::vector<V> list(const Napi::Value& v, const char* what, V (*item)(const Napi::Value&)) {
  if (!v.IsArray()) throw ArgError(std::string("expected an array of ") + what);
  auto a = v.As<Napi::Array>();
  std::vector<V> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = item(a.Get(i));
  return out;
}

std::vector<int64_t> ints(const Napi::Value& v) { return list<int64_t>(v, "integers", I); }
std::vector<double> doubles(const Napi::Value& v) { return list<double>(v, "numbers", D); }

int64_t I(const Napi::Value& v) {
  if (!v.IsNumber()) throw ArgError("expected an integer");
  return v.As<Napi::Number>().Int64Value();
}

double D(const Napi::Value& v) {
  if (!v.IsNumber()) throw ArgError("expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool B(const Napi::Value& v) {
  if (!v.IsBoolean()) throw ArgError("expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

// JS numbers that are integers become integer scalars, as Python ints do, so that `int_tensor + 1` stays
// an integer tensor while `int_tensor + 0.5` promotes to floating point.
at::Scalar scalar(const Napi::Value& v) {
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  double d = D(v);
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) {
    return at::Scalar(static_cast<int64_t>(d));
  }
  return at::Scalar(d);
}

// The dtype codes are mirrored by DTYPES in src/engine/dtype.ts.
static const at::ScalarType kTypes[] = {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kLong,
                                        at::kInt,   at::kShort, at::kChar,    at::kByte,   at::kBool};

at::ScalarType dtype_of(int64_t code) {
  if (code < 0 || code >= static_cast<int64_t>(sizeof(kTypes) / sizeof(kTypes[0]))) {
    throw ArgError("unknown dtype code " + std::to_string(code));
  }
  return kTypes[code];
}

int64_t dtype_code(at::ScalarType t) {
  for (size_t i = 0; i < sizeof(kTypes) / sizeof(kTypes[0]); i++) {
    if (kTypes[i] == t) return static_cast<int64_t>(i);
  }
  throw ArgError(std::string("unsupported dtype ") + c10::toString(t));
}

c10::optional<at::Generator> gen(const Napi::Value& v) {
  if (absent(v)) return c10::nullopt;
  if (!v.IsExternal()) throw ArgError("expected a generator handle");
  return *v.As<Napi::External<at::Generator>>().Data();
}

Napi::Array wrap_all(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto a = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) a.Set(static_cast<uint32_t>(i), wrap(env, ts[i]));
  return a;
}

std::string first_line(const char* what) {
  const char* nl = std::strchr(what, '\n');
  return nl ? std::string(what, nl - what) : std::string(what);
}

static Napi::Error make_error(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_TORCH"));
  return e;
}

Napi::Value throw_error(Napi::Env env, const std::string& message) {
  make_error(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

namespace {
class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, Work work)
      : Napi::AsyncWorker(env, "diffreg_torch"),
        work_(std::move(work)),
        deferred_(Napi::Promise::Deferred::New(env)),
        grad_enabled_(at::GradMode::is_enabled()) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  // Grad mode is thread-local in libtorch: carry the caller's setting (noGrad scopes) to the pool thread.
  void Execute() override {
    try {
      at::AutoGradMode mode(grad_enabled_);
      out_ = work_();
    } catch (const c10::Error& e) {
      SetError(first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      SetError(first_line(e.what()));
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    deferred_.Resolve(out_.defined() ? wrap(env, out_) : env.Undefined());
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(make_error(Env(), e.Message()).Value()); }

 private:
  Work work_;
  Napi::Promise::Deferred deferred_;
  bool grad_enabled_;
  at::Tensor out_;
};
}  // namespace

Napi::Value run_async(const Napi::CallbackInfo& info, Work work) {
  auto* w = new OpWorker(info.Env(), std::move(work));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace dt
