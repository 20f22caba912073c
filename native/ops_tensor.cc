// General tensor ops: creation, elementwise arithmetic, reductions, shape and indexing. Each entry point is
// a one-liner over ATen; argument order follows the JS call in src/engine/tensor.ts.
#include "common.h"

namespace dt {
namespace {

using Info = const Napi::CallbackInfo&;

at::TensorOptions opts(Info info, size_t dtype_at) {
  auto o = at::TensorOptions().dtype(dtype_of(I(info[dtype_at])));
  if (info.Length() > dtype_at + 1 && !absent(info[dtype_at + 1])) {
    o = o.device(at::Device(S(info[dtype_at + 1])));
  }
  return o;
}

c10::optional<std::vector<int64_t>> opt_dims(const Napi::Value& v) {
  if (absent(v)) return c10::nullopt;
  return ints(v);
}

// ---------------------------------------------------------------- creation
at::Tensor zeros(Info info) { return at::zeros(ints(info[0]), opts(info, 1)); }
at::Tensor ones(Info info) { return at::ones(ints(info[0]), opts(info, 1)); }
at::Tensor empty(Info info) { return at::empty(ints(info[0]), opts(info, 1)); }
at::Tensor full(Info info) { return at::full(ints(info[0]), scalar(info[1]), opts(info, 2)); }
at::Tensor arange(Info info) { return at::arange(scalar(info[0]), scalar(info[1]), scalar(info[2]), opts(info, 3)); }
at::Tensor linspace(Info info) { return at::linspace(scalar(info[0]), scalar(info[1]), I(info[2]), opts(info, 3)); }
at::Tensor eye(Info info) { return at::eye(I(info[0]), opts(info, 1)); }
at::Tensor randn(Info info) { return at::randn(ints(info[0]), gen(info[3]), opts(info, 1)); }
at::Tensor rand(Info info) { return at::rand(ints(info[0]), gen(info[3]), opts(info, 1)); }
at::Tensor randint(Info info) {
  return at::randint(I(info[0]), I(info[1]), ints(info[2]), gen(info[5]), opts(info, 3));
}
at::Tensor randperm(Info info) { return at::randperm(I(info[0]), gen(info[3]), opts(info, 1)); }

void uniform_(Info info) { T(info[0]).uniform_(D(info[1]), D(info[2]), gen(info[3])); }
void normal_(Info info) { T(info[0]).normal_(D(info[1]), D(info[2]), gen(info[3])); }
void bernoulli_(Info info) { T(info[0]).bernoulli_(D(info[1]), gen(info[2])); }

// Bytes <-> tensors. `from_bytes` copies; `from_view` shares the typed array's memory (see below).
struct Bytes {
  void* data;
  size_t length;
};

Bytes bytes(const Napi::Value& v) {
  if (!v.IsTypedArray()) throw ArgError("expected a typed array");
  auto ta = v.As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ByteLength()};
}

void check_length(const Bytes& b, at::IntArrayRef shape, at::ScalarType type) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) throw ArgError("negative dimension in shape");
    n *= s;
  }
  size_t need = static_cast<size_t>(n) * c10::elementSize(type);
  if (need != b.length) {
    throw ArgError("data holds " + std::to_string(b.length) + " bytes but shape " + c10::str(shape) + " of " +
                   c10::toString(type) + " needs " + std::to_string(need));
  }
}

at::Tensor from_bytes(Info info) {
  Bytes b = bytes(info[0]);
  auto type = dtype_of(I(info[1]));
  auto shape = ints(info[2]);
  check_length(b, shape, type);
  return at::from_blob(b.data, shape, at::TensorOptions().dtype(type)).clone();
}

// A zero-copy tensor over a JS typed array holds a strong reference to the array, released (through
// release_view_later, see common.cc) when the tensor's storage dies.
at::Tensor from_view(Info info) {
  napi_env env = info.Env();
  Bytes b = bytes(info[0]);
  auto type = dtype_of(I(info[1]));
  auto shape = ints(info[2]);
  check_length(b, shape, type);
  if (reinterpret_cast<uintptr_t>(b.data) % c10::elementSize(type) != 0) throw ArgError("data is misaligned");
  napi_ref ref;
  if (napi_create_reference(env, info[0], 1, &ref) != napi_ok) throw ArgError("cannot reference the array");
  return at::from_blob(
      b.data, shape, [env, ref](void*) { release_view_later(env, ref); }, at::TensorOptions().dtype(type));
}

Napi::Value flush_views(Info info) {
  release_views(info.Env());
  return info.Env().Undefined();
}

Napi::Value to_bytes(Info info) {
  return guard(info, [&]() -> Napi::Value {
    at::Tensor t = T(info[0]).detach().to(at::kCPU).contiguous();
    size_t n = t.nbytes();
    auto ab = Napi::ArrayBuffer::New(info.Env(), n);
    if (n > 0) std::memcpy(ab.Data(), t.data_ptr(), n);
    return ab;
  });
}

// ---------------------------------------------------------------- metadata
Napi::Value shape(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto sizes = T(info[0]).sizes();
    auto a = Napi::Array::New(info.Env(), sizes.size());
    for (size_t i = 0; i < sizes.size(); i++) a.Set(static_cast<uint32_t>(i), static_cast<double>(sizes[i]));
    return a;
  });
}

Napi::Value dtype(Info info) {
  return guard(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(dtype_code(T(info[0]).scalar_type())));
  });
}

Napi::Value device(Info info) {
  return guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), T(info[0]).device().str()); });
}

Napi::Value is_contiguous(Info info) {
  return guard(info, [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info[0]).is_contiguous()); });
}

Napi::Value item(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor& t = T(info[0]);
    if (t.numel() != 1) {
      throw ArgError("item() needs a tensor with one element, got " + std::to_string(t.numel()));
    }
    at::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(info.Env(), s.toBool());
    return Napi::Number::New(info.Env(), s.toDouble());
  });
}

// ---------------------------------------------------------------- elementwise
#define UNARY_OPS(X)                                                                                \
  X(neg, x.neg()) X(exp, x.exp()) X(log, x.log()) X(log1p, x.log1p()) X(sqrt, x.sqrt())             \
  X(rsqrt, x.rsqrt()) X(abs, x.abs()) X(sign, x.sign()) X(floor, x.floor()) X(ceil, x.ceil())       \
  X(round, x.round()) X(trunc, x.trunc()) X(sin, x.sin()) X(cos, x.cos()) X(tanh, x.tanh())         \
  X(sigmoid, x.sigmoid()) X(relu, x.relu()) X(silu, at::silu(x)) X(softplus, at::softplus(x))       \
  X(mish, at::mish(x)) X(softsign, x / (x.abs() + 1)) X(logical_not, x.logical_not())               \
  X(erf, x.erf()) X(erfinv, x.erfinv()) X(reciprocal, x.reciprocal()) X(square, x * x) X(isnan, x.isnan())                \
  X(isfinite, x.isfinite()) X(contiguous, x.contiguous()) X(clone, x.clone())                       \
  X(detach, x.detach()) X(nonzero, x.nonzero()) X(t, x.t())

#define DEF_UNARY(name, expr) \
  at::Tensor u_##name(Info info) {        \
    const at::Tensor& x = T(info[0]);     \
    return expr;                          \
  }
UNARY_OPS(DEF_UNARY)

// Binary ops accept a tensor or a JS number as the second operand.
#define BINARY_OPS(X)                                                                                \
  X(add, at::add(a, b, scalar(info[2])), at::add(a, s, scalar(info[2])))                             \
  X(sub, at::sub(a, b, scalar(info[2])), at::sub(a, s, scalar(info[2])))                             \
  X(mul, at::mul(a, b), at::mul(a, s)) X(div, at::div(a, b), at::div(a, s))                          \
  X(floor_div, at::div(a, b, "floor"), at::div(a, s, "floor"))                                       \
  X(remainder, at::remainder(a, b), at::remainder(a, s)) X(pow, at::pow(a, b), at::pow(a, s))        \
  X(eq, at::eq(a, b), at::eq(a, s)) X(ne, at::ne(a, b), at::ne(a, s)) X(lt, at::lt(a, b), at::lt(a, s)) \
  X(le, at::le(a, b), at::le(a, s)) X(gt, at::gt(a, b), at::gt(a, s)) X(ge, at::ge(a, b), at::ge(a, s)) \
  X(maximum, at::maximum(a, b), at::clamp_min(a, s)) X(minimum, at::minimum(a, b), at::clamp_max(a, s)) \
  X(logical_and, at::logical_and(a, b), at::logical_and(a, at::scalar_tensor(s, a.options())))     \
  X(logical_or, at::logical_or(a, b), at::logical_or(a, at::scalar_tensor(s, a.options())))        \
  X(logical_xor, at::logical_xor(a, b), at::logical_xor(a, at::scalar_tensor(s, a.options())))     \
  X(rsub, at::sub(b, a), at::rsub(a, s)) X(rdiv, at::div(b, a), at::mul(a.reciprocal(), s))         \
  X(rpow, at::pow(b, a), at::pow(s, a))

#define DEF_BINARY(name, tensor_expr, scalar_expr) \
  at::Tensor b_##name(Info info) {                \
    const at::Tensor& a = T(info[0]);             \
    if (info[1].IsNumber() || info[1].IsBoolean()) { \
      at::Scalar s = scalar(info[1]);             \
      return scalar_expr;                         \
    }                                             \
    const at::Tensor& b = T(info[1]);             \
    return tensor_expr;                           \
  }
BINARY_OPS(DEF_BINARY)

// In-place updates (optimisers, initialisation, EMA): tensor or number operand. ATen's in-place methods
// are const on the handle (they mutate the shared tensor implementation).
#define INPLACE_OPS(X)                                                            \
  X(add_, a.add_(b, scalar(info[2])), a.add_(s, scalar(info[2])))                 \
  X(mul_, a.mul_(b), a.mul_(s)) X(div_, a.div_(b), a.div_(s))

#define DEF_INPLACE(name, tensor_expr, scalar_expr) \
  void name(Info info) {                           \
    const at::Tensor& a = T(info[0]);              \
    if (info[1].IsNumber()) {                      \
      at::Scalar s = scalar(info[1]);              \
      scalar_expr;                                 \
    } else {                                       \
      const at::Tensor& b = T(info[1]);            \
      tensor_expr;                                 \
    }                                              \
  }
INPLACE_OPS(DEF_INPLACE)

void copy_(Info info) { T(info[0]).copy_(T(info[1])); }
void fill_(Info info) { T(info[0]).fill_(scalar(info[1])); }
void zero_(Info info) { T(info[0]).zero_(); }
void sqrt_(Info info) { T(info[0]).sqrt_(); }
void addcmul_(Info info) { T(info[0]).addcmul_(T(info[1]), T(info[2]), scalar(info[3])); }
void addcdiv_(Info info) { T(info[0]).addcdiv_(T(info[1]), T(info[2]), scalar(info[3])); }
void lerp_(Info info) {
  if (info[2].IsNumber()) {
    T(info[0]).lerp_(T(info[1]), scalar(info[2]));
  } else {
    T(info[0]).lerp_(T(info[1]), T(info[2]));
  }
}

// clamp bounds at info[1], info[2]; null means unbounded on that side.
std::pair<c10::optional<at::Scalar>, c10::optional<at::Scalar>> bounds(Info info) {
  c10::optional<at::Scalar> lo, hi;
  if (!absent(info[1])) lo = scalar(info[1]);
  if (!absent(info[2])) hi = scalar(info[2]);
  return {lo, hi};
}
void clamp_(Info info) {
  auto [lo, hi] = bounds(info);
  T(info[0]).clamp_(lo, hi);
}
void maximum_(Info info) {
  at::Tensor& a = const_cast<at::Tensor&>(T(info[0]));
  at::maximum_out(a, a, T(info[1]));
}

at::Tensor where(Info info) {
  const at::Tensor& c = T(info[0]);
  bool sa = info[1].IsNumber(), sb = info[2].IsNumber();
  if (sa && sb) return at::where(c, scalar(info[1]), scalar(info[2]));
  if (sa) return at::where(c, scalar(info[1]), T(info[2]));
  if (sb) return at::where(c, T(info[1]), scalar(info[2]));
  return at::where(c, T(info[1]), T(info[2]));
}
at::Tensor clamp(Info info) {
  auto [lo, hi] = bounds(info);
  return at::clamp(T(info[0]), lo, hi);
}
at::Tensor masked_fill(Info info) {
  if (info[2].IsNumber() || info[2].IsBoolean()) return T(info[0]).masked_fill(T(info[1]), scalar(info[2]));
  return T(info[0]).masked_fill(T(info[1]), T(info[2]));
}
at::Tensor to_dtype(Info info) { return T(info[0]).to(dtype_of(I(info[1]))); }
at::Tensor to_device(Info info) { return T(info[0]).to(at::Device(S(info[1]))); }

// ---------------------------------------------------------------- reductions
at::Tensor sum(Info info) {
  if (absent(info[1])) return T(info[0]).sum();
  return T(info[0]).sum(ints(info[1]), B(info[2]));
}
at::Tensor mean(Info info) {
  if (absent(info[1])) return T(info[0]).mean();
  return T(info[0]).mean(ints(info[1]), B(info[2]));
}
at::Tensor prod(Info info) {
  if (absent(info[1])) return T(info[0]).prod();
  return T(info[0]).prod(I(info[1]), B(info[2]));
}
at::Tensor amax(Info info) { return T(info[0]).amax(absent(info[1]) ? std::vector<int64_t>{} : ints(info[1]), B(info[2])); }
at::Tensor amin(Info info) { return T(info[0]).amin(absent(info[1]) ? std::vector<int64_t>{} : ints(info[1]), B(info[2])); }
at::Tensor argmax(Info info) {
  c10::optional<int64_t> dim;
  if (!absent(info[1])) dim = I(info[1]);
  return T(info[0]).argmax(dim, B(info[2]));
}
at::Tensor argmin(Info info) {
  c10::optional<int64_t> dim;
  if (!absent(info[1])) dim = I(info[1]);
  return T(info[0]).argmin(dim, B(info[2]));
}
at::Tensor var(Info info) {
  auto dims = opt_dims(info[1]);
  return at::var(T(info[0]), dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt, B(info[2]), B(info[3]));
}
at::Tensor std_(Info info) {
  auto dims = opt_dims(info[1]);
  return at::std(T(info[0]), dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt, B(info[2]), B(info[3]));
}
at::Tensor norm(Info info) {
  auto dims = opt_dims(info[2]);
  return at::linalg_vector_norm(T(info[0]), scalar(info[1]), dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt,
                                B(info[3]));
}
at::Tensor logsumexp(Info info) { return at::logsumexp(T(info[0]), ints(info[1]), B(info[2])); }
at::Tensor all(Info info) { return absent(info[1]) ? T(info[0]).all() : T(info[0]).all(I(info[1]), B(info[2])); }
at::Tensor any(Info info) { return absent(info[1]) ? T(info[0]).any() : T(info[0]).any(I(info[1]), B(info[2])); }
at::Tensor cumsum(Info info) { return T(info[0]).cumsum(I(info[1])); }
at::Tensor cumprod(Info info) { return T(info[0]).cumprod(I(info[1])); }

Napi::Value max_dim(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto r = T(info[0]).max(I(info[1]), B(info[2]));
    return wrap_all(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
Napi::Value min_dim(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto r = T(info[0]).min(I(info[1]), B(info[2]));
    return wrap_all(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
Napi::Value topk(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto r = T(info[0]).topk(I(info[1]), I(info[2]), B(info[3]), B(info[4]));
    return wrap_all(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
Napi::Value sort(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto r = T(info[0]).sort(I(info[1]), B(info[2]));
    return wrap_all(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}

// ---------------------------------------------------------------- shape and indexing
at::Tensor reshape(Info info) { return T(info[0]).reshape(ints(info[1])); }
at::Tensor view(Info info) { return T(info[0]).view(ints(info[1])); }
at::Tensor permute(Info info) { return T(info[0]).permute(ints(info[1])); }
at::Tensor transpose(Info info) { return T(info[0]).transpose(I(info[1]), I(info[2])); }
at::Tensor movedim(Info info) { return T(info[0]).movedim(ints(info[1]), ints(info[2])); }
at::Tensor flatten(Info info) { return T(info[0]).flatten(I(info[1]), I(info[2])); }
at::Tensor squeeze(Info info) { return absent(info[1]) ? T(info[0]).squeeze() : T(info[0]).squeeze(I(info[1])); }
at::Tensor unsqueeze(Info info) { return T(info[0]).unsqueeze(I(info[1])); }
at::Tensor expand(Info info) { return T(info[0]).expand(ints(info[1])); }
at::Tensor repeat(Info info) { return T(info[0]).repeat(ints(info[1])); }
at::Tensor repeat_interleave(Info info) { return T(info[0]).repeat_interleave(I(info[1]), I(info[2])); }
at::Tensor roll(Info info) { return T(info[0]).roll(ints(info[1]), ints(info[2])); }
at::Tensor flip(Info info) { return T(info[0]).flip(ints(info[1])); }
at::Tensor narrow(Info info) { return T(info[0]).narrow(I(info[1]), I(info[2]), I(info[3])); }
at::Tensor slice(Info info) {
  c10::optional<int64_t> start, end;
  if (!absent(info[2])) start = I(info[2]);
  if (!absent(info[3])) end = I(info[3]);
  return T(info[0]).slice(I(info[1]), start, end, I(info[4]));
}
at::Tensor select(Info info) { return T(info[0]).select(I(info[1]), I(info[2])); }
at::Tensor index_select(Info info) { return T(info[0]).index_select(I(info[1]), T(info[2])); }
at::Tensor gather(Info info) { return T(info[0]).gather(I(info[1]), T(info[2])); }
at::Tensor scatter(Info info) {
  if (info[3].IsNumber()) return T(info[0]).scatter(I(info[1]), T(info[2]), scalar(info[3]));
  return T(info[0]).scatter(I(info[1]), T(info[2]), T(info[3]));
}
at::Tensor scatter_add(Info info) { return T(info[0]).scatter_add(I(info[1]), T(info[2]), T(info[3])); }
at::Tensor cat(Info info) { return at::cat(tensors(info[0]), I(info[1])); }
at::Tensor stack(Info info) { return at::stack(tensors(info[0]), I(info[1])); }
at::Tensor unfold(Info info) { return T(info[0]).unfold(I(info[1]), I(info[2]), I(info[3])); }
at::Tensor tril(Info info) { return T(info[0]).tril(I(info[1])); }
at::Tensor triu(Info info) { return T(info[0]).triu(I(info[1])); }
at::Tensor one_hot(Info info) { return at::one_hot(T(info[0]), I(info[1])); }
at::Tensor einsum(Info info) { return at::einsum(S(info[0]), tensors(info[1])); }

// Advanced indexing x[i0, i1, ...] with tensors; null entries select a whole dimension.
c10::List<c10::optional<at::Tensor>> index_list(const Napi::Value& v) {
  if (!v.IsArray()) throw ArgError("expected an array of index tensors");
  auto a = v.As<Napi::Array>();
  c10::List<c10::optional<at::Tensor>> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(optT(a.Get(i)));
  return out;
}
at::Tensor index(Info info) { return at::index(T(info[0]), index_list(info[1])); }
void index_put_(Info info) { T(info[0]).index_put_(index_list(info[1]), T(info[2]), B(info[3])); }

Napi::Value split(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor& x = T(info[0]);
    auto parts = info[1].IsNumber() ? x.split(I(info[1]), I(info[2])) : x.split_with_sizes(ints(info[1]), I(info[2]));
    return wrap_all(info.Env(), parts);
  });
}
Napi::Value chunk(Info info) {
  return guard(info, [&]() -> Napi::Value { return wrap_all(info.Env(), T(info[0]).chunk(I(info[1]), I(info[2]))); });
}
Napi::Value unbind(Info info) {
  return guard(info, [&]() -> Napi::Value { return wrap_all(info.Env(), T(info[0]).unbind(I(info[1]))); });
}
Napi::Value meshgrid(Info info) {
  return guard(info, [&]() -> Napi::Value {
    return wrap_all(info.Env(), at::meshgrid(tensors(info[0]), S(info[1])));
  });
}

}  // namespace

void register_tensor_ops(Napi::Env env, Exports e) {
#define REG_T(name) def<tensor_op<name>>(env, e, #name);
#define REG_V(name) def<void_op<name>>(env, e, #name);
#define REG_N(name) def<name>(env, e, #name);
#define REG_UNARY(name, expr) def<tensor_op<u_##name>>(env, e, #name);
#define REG_BINARY(name, t, s) def<tensor_op<b_##name>>(env, e, #name);
#define REG_INPLACE(name, t, s) def<void_op<name>>(env, e, #name);
  REG_T(zeros) REG_T(ones) REG_T(empty) REG_T(full) REG_T(arange) REG_T(linspace) REG_T(eye) REG_T(randn)
  REG_T(rand) REG_T(randint) REG_T(randperm) REG_T(from_bytes) REG_T(from_view)
  REG_V(uniform_) REG_V(normal_) REG_V(bernoulli_)
  REG_N(flush_views) REG_N(to_bytes) REG_N(shape) REG_N(dtype) REG_N(device) REG_N(is_contiguous) REG_N(item)
  UNARY_OPS(REG_UNARY)
  BINARY_OPS(REG_BINARY)
  INPLACE_OPS(REG_INPLACE)
  REG_V(copy_) REG_V(fill_) REG_V(zero_) REG_V(sqrt_) REG_V(addcmul_)
  REG_V(addcdiv_) REG_V(lerp_) REG_V(clamp_) REG_V(maximum_) REG_V(index_put_)
  REG_T(where) REG_T(clamp) REG_T(masked_fill) REG_T(to_dtype) REG_T(to_device)
  REG_T(sum) REG_T(mean) REG_T(prod) REG_T(amax) REG_T(amin) REG_T(argmax) REG_T(argmin) REG_T(var)
  REG_T(norm) REG_T(logsumexp) REG_T(all) REG_T(any) REG_T(cumsum) REG_T(cumprod)
  def<tensor_op<std_>>(env, e, "std");
  REG_N(max_dim) REG_N(min_dim) REG_N(topk) REG_N(sort)
  REG_T(reshape) REG_T(view) REG_T(permute) REG_T(transpose) REG_T(movedim) REG_T(flatten) REG_T(squeeze)
  REG_T(unsqueeze) REG_T(expand) REG_T(repeat) REG_T(repeat_interleave) REG_T(roll) REG_T(flip) REG_T(narrow)
  REG_T(slice) REG_T(select) REG_T(index_select) REG_T(gather) REG_T(scatter) REG_T(scatter_add) REG_T(cat)
  REG_T(stack) REG_T(unfold) REG_T(tril) REG_T(triu) REG_T(one_hot) REG_T(einsum) REG_T(index)
  REG_N(split) REG_N(chunk) REG_N(unbind) REG_N(meshgrid)
}

}  // namespace dt
