// Neural-network ops (the torch.nn.functional subset diffreg needs). The heavy ones are "prepare" functions
// (see common.h) registered both synchronously and as `<name>_async` returning a Promise.
#include <ATen/Parallel.h>

#include <immintrin.h>

#include <cmath>
#include <limits>
#include <type_traits>

#include "common.h"
#include "fastmath.h"

namespace dt {
namespace {

using Info = const Napi::CallbackInfo&;

void check_spatial(const at::Tensor& x, size_t nd, const char* what) {
  if (nd < 1 || nd > 3) throw ArgError(std::string(what) + " supports 1 to 3 spatial dimensions");
  if (x.dim() != static_cast<int64_t>(nd) + 2) {
    throw ArgError(std::string(what) + " expects a " + std::to_string(nd + 2) + "-D input (N, C, spatial...), got " +
                   std::to_string(x.dim()) + "-D");
  }
}

// ---------------------------------------------------------------- heavy ops (sync + async)
// convolution(x, w, b|null, stride, padding|"same"|"valid", dilation, transposed, output_padding, groups)
Work convolution(Info info) {
  at::Tensor x = T(info[0]), w = T(info[1]);
  c10::optional<at::Tensor> b = optT(info[2]);
  auto stride = ints(info[3]), dilation = ints(info[5]), output_padding = ints(info[7]);
  bool transposed = B(info[6]);
  int64_t groups = I(info[8]);
  int64_t nd = w.dim() - 2;
  if (nd < 1 || nd > 3) throw ArgError("weight must be 3-D to 5-D, got " + std::to_string(w.dim()) + "-D");
  if (info[4].IsString()) {
    std::string mode = S(info[4]);
    return [=]() {
      if (nd == 1) return at::conv1d(x, w, b, stride, mode, dilation, groups);
      if (nd == 2) return at::conv2d(x, w, b, stride, mode, dilation, groups);
      return at::conv3d(x, w, b, stride, mode, dilation, groups);
    };
  }
  auto padding = ints(info[4]);
  if (transposed) {
    return [=]() {
      if (nd == 1) return at::conv_transpose1d(x, w, b, stride, padding, output_padding, groups, dilation);
      if (nd == 2) return at::conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation);
      return at::conv_transpose3d(x, w, b, stride, padding, output_padding, groups, dilation);
    };
  }
  return [=]() {
    if (nd == 1) return at::conv1d(x, w, b, stride, padding, dilation, groups);
    if (nd == 2) return at::conv2d(x, w, b, stride, padding, dilation, groups);
    return at::conv3d(x, w, b, stride, padding, dilation, groups);
  };
}

Work linear(Info info) {
  at::Tensor x = T(info[0]), w = T(info[1]);
  c10::optional<at::Tensor> b = optT(info[2]);
  return [=]() { return at::linear(x, w, b); };
}

Work matmul(Info info) {
  at::Tensor a = T(info[0]), b = T(info[1]);
  return [=]() { return at::matmul(a, b); };
}

Work bmm(Info info) {
  at::Tensor a = T(info[0]), b = T(info[1]);
  return [=]() { return at::bmm(a, b); };
}

// softmax(q·kᵀ·scale + bias) · v: attention.cc's kernel for inference without masks, otherwise the
// composition (libtorch 1.13 has no fused kernel).
// A boolean mask keeps positions where it is true (PyTorch's convention); a float mask is added (relative
// position bias, shifted-window masks).
Work sdpa(Info info) {
  at::Tensor q = T(info[0]), k = T(info[1]), v = T(info[2]);
  c10::optional<at::Tensor> mask = optT(info[3]);
  double scale = absent(info[4]) ? 1.0 / std::sqrt(static_cast<double>(q.size(-1))) : D(info[4]);
  bool causal = B(info[5]);
  return [=]() {
    if (!mask && !causal && fused_attention_applies(q, k, v)) return fused_attention(q, k, v, scale);
    at::Tensor s = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
    if (causal) {
      int64_t L = s.size(-2), S = s.size(-1);
      auto keep = at::ones({L, S}, s.options().dtype(at::kBool)).tril();
      s = s.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
    }
    if (mask) {
      s = mask->scalar_type() == at::kBool
              ? s.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity())
              : s + *mask;
    }
    return at::matmul(at::softmax(s, -1), v);
  };
}

// interpolate(x, size|null, scale_factors|null, mode, align_corners). Modes: 0 nearest, 1 (bi/tri)linear,
// 2 bicubic, 3 nearest-exact, 4 area. As F.interpolate without recompute_scale_factor: the scale factors
// reach the kernel.
Work interpolate(Info info) {
  at::Tensor x = T(info[0]);
  c10::optional<std::vector<int64_t>> size;
  c10::optional<std::vector<double>> scales;
  if (!absent(info[1])) size = ints(info[1]);
  if (!absent(info[2])) scales = doubles(info[2]);
  int64_t mode = I(info[3]);
  bool align = B(info[4]);
  size_t nd = size ? size->size() : scales ? scales->size() : 0;
  check_spatial(x, nd, "interpolate");
  if (mode == 2 && nd != 2) throw ArgError("bicubic interpolation needs a 4-D input");
  return [=]() {
    at::OptionalIntArrayRef os = size ? at::OptionalIntArrayRef(*size) : c10::nullopt;
    c10::optional<at::ArrayRef<double>> sf = scales ? c10::optional<at::ArrayRef<double>>(*scales) : c10::nullopt;
    switch (mode) {
      case 0:
        return nd == 1 ? at::upsample_nearest1d(x, os, sf)
                       : nd == 2 ? at::upsample_nearest2d(x, os, sf) : at::upsample_nearest3d(x, os, sf);
      case 1:
        return nd == 1 ? at::upsample_linear1d(x, os, align, sf)
                       : nd == 2 ? at::upsample_bilinear2d(x, os, align, sf)
                                 : at::upsample_trilinear3d(x, os, align, sf);
      case 2:
        return at::upsample_bicubic2d(x, os, align, sf);
      case 3:
        return nd == 1 ? at::_upsample_nearest_exact1d(x, os, sf)
                       : nd == 2 ? at::_upsample_nearest_exact2d(x, os, sf) : at::_upsample_nearest_exact3d(x, os, sf);
      default: {
        std::vector<int64_t> out = size ? *size : std::vector<int64_t>(nd);
        if (!size) {
          for (size_t i = 0; i < nd; i++) {
            out[i] = static_cast<int64_t>(std::floor(static_cast<double>(x.size(2 + i)) * (*scales)[i]));
          }
        }
        return nd == 1 ? at::adaptive_avg_pool1d(x, out)
                       : nd == 2 ? at::adaptive_avg_pool2d(x, out) : at::adaptive_avg_pool3d(x, out);
      }
    }
  };
}

// grid_sample(x, grid, mode 0 bilinear | 1 nearest | 2 bicubic, padding 0 zeros | 1 border | 2 reflection,
// align_corners); 4-D and 5-D inputs.
Work grid_sample(Info info) {
  at::Tensor x = T(info[0]), grid = T(info[1]);
  int64_t mode = I(info[2]), padding = I(info[3]);
  bool align = B(info[4]);
  return [=]() { return at::grid_sampler(x, grid, mode, padding, align); };
}

// ---------------------------------------------------------------- other nn ops
at::Tensor affine_grid(Info info) { return at::affine_grid_generator(T(info[0]), ints(info[1]), B(info[2])); }

at::Tensor pad(Info info) {
  static const char* modes[] = {"constant", "reflect", "replicate", "circular"};
  int64_t mode = I(info[2]);
  if (mode < 0 || mode > 3) throw ArgError("unknown pad mode");
  c10::optional<double> value;
  if (mode == 0) value = D(info[3]);
  return at::pad(T(info[0]), ints(info[1]), modes[mode], value);
}

at::Tensor max_pool(Info info) {
  const at::Tensor& x = T(info[0]);
  auto k = ints(info[1]), s = ints(info[2]), p = ints(info[3]), d = ints(info[4]);
  bool ceil = B(info[5]);
  if (k.size() == 1) return at::max_pool1d(x, k, s, p, d, ceil);
  if (k.size() == 2) return at::max_pool2d(x, k, s, p, d, ceil);
  return at::max_pool3d(x, k, s, p, d, ceil);
}

at::Tensor avg_pool(Info info) {
  const at::Tensor& x = T(info[0]);
  auto k = ints(info[1]), s = ints(info[2]), p = ints(info[3]);
  bool ceil = B(info[4]), include_pad = B(info[5]);
  if (k.size() == 1) return at::avg_pool1d(x, k, s, p, ceil, include_pad);
  if (k.size() == 2) return at::avg_pool2d(x, k, s, p, ceil, include_pad);
  return at::avg_pool3d(x, k, s, p, ceil, include_pad);
}

at::Tensor adaptive_avg_pool(Info info) {
  const at::Tensor& x = T(info[0]);
  auto out = ints(info[1]);
  if (out.size() == 1) return at::adaptive_avg_pool1d(x, out);
  if (out.size() == 2) return at::adaptive_avg_pool2d(x, out);
  return at::adaptive_avg_pool3d(x, out);
}

at::Tensor group_norm(Info info) {
  return at::group_norm(T(info[0]), I(info[1]), optT(info[2]), optT(info[3]), D(info[4]));
}
at::Tensor layer_norm(Info info) {
  return at::layer_norm(T(info[0]), ints(info[1]), optT(info[2]), optT(info[3]), D(info[4]));
}
// instance_norm(x, w, b, running_mean, running_var, use_input_stats, momentum, eps)
at::Tensor instance_norm(Info info) {
  return at::instance_norm(T(info[0]), optT(info[1]), optT(info[2]), optT(info[3]), optT(info[4]), B(info[5]),
                           D(info[6]), D(info[7]), false);
}
// batch_norm(x, w, b, running_mean, running_var, training, momentum, eps)
at::Tensor batch_norm(Info info) {
  return at::batch_norm(T(info[0]), optT(info[1]), optT(info[2]), optT(info[3]), optT(info[4]), B(info[5]), D(info[6]),
                        D(info[7]), false);
}

at::Tensor softmax(Info info) { return at::softmax(T(info[0]), I(info[1])); }
at::Tensor log_softmax(Info info) { return at::log_softmax(T(info[0]), I(info[1])); }
at::Tensor leaky_relu(Info info) { return at::leaky_relu(T(info[0]), scalar(info[1])); }
at::Tensor elu(Info info) { return at::elu(T(info[0]), scalar(info[1])); }
at::Tensor prelu(Info info) { return at::prelu(T(info[0]), T(info[1])); }
at::Tensor gelu(Info info) { return at::gelu(T(info[0]), B(info[1]) ? "tanh" : "none"); }

// Inverted dropout with an explicit generator, so that training runs are reproducible from a seed.
at::Tensor dropout(Info info) {
  const at::Tensor& x = T(info[0]);
  double p = D(info[1]);
  if (p >= 1) return x * 0;
  at::Tensor keep = at::empty_like(x).bernoulli_(1 - p, gen(info[2]));
  return x * keep.div_(1 - p);
}

at::Tensor mse_loss(Info info) { return at::mse_loss(T(info[0]), T(info[1]), I(info[2])); }
at::Tensor l1_loss(Info info) { return at::l1_loss(T(info[0]), T(info[1]), I(info[2])); }
at::Tensor smooth_l1_loss(Info info) { return at::smooth_l1_loss(T(info[0]), T(info[1]), I(info[2]), D(info[3])); }
// cross_entropy(logits, target, weight|null, reduction, ignore_index, label_smoothing)
at::Tensor cross_entropy(Info info) {
  return at::cross_entropy_loss(T(info[0]), T(info[1]), optT(info[2]), I(info[3]), I(info[4]), D(info[5]));
}
at::Tensor bce_with_logits(Info info) {
  return at::binary_cross_entropy_with_logits(T(info[0]), T(info[1]), optT(info[2]), optT(info[3]), I(info[4]));
}


// Streaming GroupNorm helpers (src/models/maisi/streaming.ts): x is a (1, C, n, H, D) float32 or float16
// view (e.g. a slab of a stored activation) whose last two axes are contiguous.
template <typename F>
void for_channel_rows(const at::Tensor& x, F body) {
  if (x.dim() != 5 || x.size(0) != 1) throw ArgError("expected a (1, C, n, H, D) tensor");
  if (x.stride(4) != 1 || x.stride(3) != x.size(4)) throw ArgError("the last two axes must be contiguous");
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kHalf) throw ArgError("expected float32 or float16");
  at::parallel_for(0, x.size(1), 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; c++)
      for (int64_t r = 0; r < x.size(2); r++) body(c, r, x.stride(1) * c + x.stride(2) * r, x.size(3) * x.size(4));
  });
}

template <typename T>
DT_CLONES void affine_portable(const T* v, int64_t n, float scale, float shift, float* out) {
  for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(v[i]) * scale + shift;
}

// y (+ residual) → out, with the sums of the stored (rounded) values accumulated in double over 16 lanes.
template <typename T, typename R>
DT_CLONES void store_row_portable(T* out, const float* y, const R* residual, int64_t n, double* sum, double* squares) {
  double s[16] = {}, q[16] = {};
  int64_t i = 0;
  auto one = [&](int64_t k, int j) {
    const T v = static_cast<T>(residual ? y[k] + static_cast<float>(residual[k]) : y[k]);
    out[k] = v;
    const double x = static_cast<float>(v);
    s[j] += x;
    q[j] += x * x;
  };
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) one(i + j, j);
  for (; i < n; i++) one(i, 0);
  for (int j = 0; j < 16; j++) *sum += s[j], *squares += q[j];
}

// float16 rows with AVX-512: c10::Half converts one value at a time in portable bit arithmetic, which made
// float16 stores 5× slower than float32 ones; vcvtph2ps / vcvtps2ph convert 16 values per instruction
// (same rounding: to nearest even), 16 lanes of sums as in the portable loop; tails go to the portable loops.
// (GCC 12 warns about the intrinsics' own deliberately undefined registers, GCC bug 105593.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define DT_AVX512 __attribute__((target("avx512f"), optimize("O3")))
// (__builtin_cpu_init: this runs during static initialisation, perhaps before libgcc's own detection.)
const bool has_avx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));

DT_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
DT_AVX512 inline __m512 load16(const at::Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

DT_AVX512 void affine_avx512(const at::Half* v, int64_t n, float scale, float shift, float* out) {
  const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_mul_ps(load16(v + i), a), b));
  affine_portable(v + i, n - i, scale, shift, out + i);
}

template <typename R>
DT_AVX512 void store_row_avx512(at::Half* out, const float* y, const R* residual, int64_t n, double* sum,
                                double* squares) {
  __m512d s_lo = _mm512_setzero_pd(), s_hi = s_lo, q_lo = s_lo, q_hi = s_lo;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = load16(y + i);
    if (residual) v = _mm512_add_ps(v, load16(residual + i));
    const __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
    const __m512 x = _mm512_cvtph_ps(h);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    s_lo = _mm512_add_pd(s_lo, lo), s_hi = _mm512_add_pd(s_hi, hi);
    q_lo = _mm512_add_pd(q_lo, _mm512_mul_pd(lo, lo)), q_hi = _mm512_add_pd(q_hi, _mm512_mul_pd(hi, hi));
  }
  double s[16], q[16];
  _mm512_storeu_pd(s, s_lo), _mm512_storeu_pd(s + 8, s_hi), _mm512_storeu_pd(q, q_lo), _mm512_storeu_pd(q + 8, q_hi);
  for (int j = 0; j < 16; j++) *sum += s[j], *squares += q[j];
  store_row_portable(out + i, y + i, residual ? residual + i : nullptr, n - i, sum, squares);
}
#pragma GCC diagnostic pop

// The per-row kernels: AVX-512 for float16 where available, the portable (auto-vectorised) loops otherwise.
template <typename T>
void affine(const T* v, int64_t n, float scale, float shift, float* out) {
  if constexpr (std::is_same_v<T, at::Half>) {
    if (has_avx512) return affine_avx512(v, n, scale, shift, out);
  }
  affine_portable(v, n, scale, shift, out);
}

template <typename T, typename R>
void store_row(T* out, const float* y, const R* residual, int64_t n, double* sum, double* squares) {
  if constexpr (std::is_same_v<T, at::Half>) {
    if (has_avx512) return store_row_avx512(out, y, residual, n, sum, squares);
  }
  store_row_portable(out, y, residual, n, sum, squares);
}

// store_rows(out, y, residual | null) → (C, 2) float64: writes y (+ residual) into the view `out` (float32
// or float16, last two axes contiguous) and returns the per-channel sum and sum of squares of what was
// stored — the next GroupNorm's statistics, gathered in the same pass. y: contiguous float32 of out's
// shape; residual: a float32 or float16 view of that shape with contiguous last two axes (it may be `out`
// itself: each element is read before it is written).
at::Tensor store_rows(Info info) {
  const at::Tensor &out = T(info[0]), &y = T(info[1]);
  c10::optional<at::Tensor> residual = optT(info[2]);
  if (!y.is_contiguous() || y.scalar_type() != at::kFloat || !y.sizes().equals(out.sizes()))
    throw ArgError("y must be a contiguous float32 tensor of the output's shape");
  if (residual && ((residual->scalar_type() != at::kFloat && residual->scalar_type() != at::kHalf) ||
                   !residual->sizes().equals(out.sizes()) || residual->stride(4) != 1 ||
                   residual->stride(3) != residual->size(4)))
    throw ArgError("residual must be a float32 or float16 view of the output's shape with contiguous last two axes");
  at::Tensor sums = at::zeros({out.size(1), 2}, at::kDouble);
  double* sp = sums.data_ptr<double>();
  const float* yp = y.data_ptr<float>();
  const int64_t rows = out.size(2), plane = out.size(3) * out.size(4);
  auto run = [&](auto* base, const auto* rp) {
    for_channel_rows(out, [&](int64_t c, int64_t r, int64_t offset, int64_t n) {
      const auto* res = rp ? rp + residual->stride(1) * c + residual->stride(2) * r : nullptr;
      store_row(base + offset, yp + (c * rows + r) * plane, res, n, &sp[2 * c], &sp[2 * c + 1]);
    });
  };
  auto with_residual = [&](auto* base) {
    if (residual && residual->scalar_type() == at::kHalf)
      run(base, residual->data_ptr<at::Half>());
    else
      run(base, residual ? residual->data_ptr<float>() : static_cast<const float*>(nullptr));
  };
  if (out.scalar_type() == at::kHalf)
    with_residual(out.data_ptr<at::Half>());
  else
    with_residual(out.data_ptr<float>());
  return sums;
}

// SiLU in place, x / (1 + e^−x); for x ≤ −88.7, e^−x is infinite and silu(x) −0 (true value below 1e−36).
DT_CLONES void silu_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.f + exp_fast(-x[i]));
}

template <typename T>
void affine_rows(const at::Tensor& x, const float* scale, const float* shift, float* out) {
  const T* base = x.data_ptr<T>();
  const int64_t plane = x.size(3) * x.size(4), rows = x.size(2);
  for_channel_rows(x, [&](int64_t c, int64_t r, int64_t offset, int64_t n) {
    float* o = out + (c * rows + r) * plane;
    affine(base + offset, n, scale[c], shift[c], o);
    silu_inplace(o, n);  // while the row is still in cache
  });
}

// channel_affine_silu(x, scale (C), shift (C)) → silu(x·scale + shift) per channel, a new contiguous
// float32 tensor, in one pass over memory (the float16 → float32 conversion included).
at::Tensor channel_affine_silu(Info info) {
  const at::Tensor& x = T(info[0]);
  at::Tensor scale = T(info[1]).to(at::kFloat).contiguous(), shift = T(info[2]).to(at::kFloat).contiguous();
  if (x.dim() != 5 || scale.numel() != x.size(1) || shift.numel() != x.size(1))
    throw ArgError("scale and shift need one value per channel of a (1, C, n, H, D) input");
  at::Tensor out = at::empty(x.sizes(), at::kFloat);
  if (x.scalar_type() == at::kHalf)
    affine_rows<at::Half>(x, scale.data_ptr<float>(), shift.data_ptr<float>(), out.data_ptr<float>());
  else
    affine_rows<float>(x, scale.data_ptr<float>(), shift.data_ptr<float>(), out.data_ptr<float>());
  return out;
}

}  // namespace

void register_nn_ops(Napi::Env env, Exports e) {
#define REG_HEAVY(name)                    \
  def<sync_op<name>>(env, e, #name); \
  def<async_op<name>>(env, e, #name "_async");
#define REG_T(name) def<tensor_op<name>>(env, e, #name);
  REG_HEAVY(convolution) REG_HEAVY(linear) REG_HEAVY(matmul) REG_HEAVY(bmm) REG_HEAVY(sdpa)
  REG_HEAVY(interpolate) REG_HEAVY(grid_sample)
  def<tensor_op<channel_affine_silu>>(env, e, "channel_affine_silu");
  def<tensor_op<store_rows>>(env, e, "store_rows");
  REG_T(affine_grid) REG_T(pad) REG_T(max_pool) REG_T(avg_pool) REG_T(adaptive_avg_pool) REG_T(group_norm)
  REG_T(layer_norm) REG_T(instance_norm) REG_T(batch_norm) REG_T(softmax) REG_T(log_softmax) REG_T(leaky_relu)
  REG_T(elu) REG_T(prelu) REG_T(gelu) REG_T(dropout) REG_T(mse_loss) REG_T(l1_loss) REG_T(smooth_l1_loss)
  REG_T(cross_entropy) REG_T(bce_with_logits)
}

}  // namespace dt
