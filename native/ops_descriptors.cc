// Classical voxel descriptors as fused kernels: MIND-SSC and dilated intensity patches of a whole image.
//
// Both were chains of tensor ops over shifted copies of the image: MIND-SSC's twelve differences, squares,
// replicate pads and 3×3×3 average pools, then the variance, exp and channel maximum, took 4.6–5.3 s per
// 160 × 192 × 160 brain on two threads and 27 s of a 512 × 512 × 141 CT pair's 81 s (measured,
// bench/harness/RESULTS.md, 2026-12-07); the patches 1.4 s per brain. Here each output value is written
// once from rows held in cache, the box filter separable: on LPBA40 S20 (two threads, a training on the
// machine, same run) MIND-SSC 9.6 → 0.36 s, the patches 2.1 → 0.11 s, within 7e-7 of the tensor ops.
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "common.h"
#include "fastmath.h"

namespace dt {

DT_CLONES void add_into(float* __restrict acc, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; i++) acc[i] += v[i];
}

namespace {

using Info = const Napi::CallbackInfo&;

int64_t clamped(int64_t v, int64_t n) { return v < 0 ? 0 : (v >= n ? n - 1 : v); }

struct Image {
  const float* p;
  int64_t n[3];
  // The row along the last axis at (x + ox, y + oy) shifted by oz, indices clamped to the image
  // (replicate borders): out[z] = I[x + ox, y + oy, z + oz].
  void shifted_row(int64_t x, int64_t y, const int64_t* o, float* out) const {
    const float* row = p + (clamped(x + o[0], n[0]) * n[1] + clamped(y + o[1], n[1])) * n[2];
    const int64_t d = n[2], lo = std::clamp<int64_t>(-o[2], 0, d), hi = std::clamp<int64_t>(d - o[2], 0, d);
    std::fill(out, out + lo, row[0]);
    std::copy(row + lo + o[2], row + hi + o[2], out + lo);
    std::fill(out + hi, out + d, row[d - 1]);
  }
};

Image image_arg(const at::Tensor& t, const std::vector<int64_t>& dilation) {
  if (t.dim() != 3 || t.scalar_type() != at::kFloat || !t.is_contiguous())
    throw ArgError("the image must be a contiguous float32 (W, H, D) tensor");
  if (dilation.size() != 3) throw ArgError("dilation needs 3 values");
  for (int64_t v : dilation)
    if (v < 0) throw ArgError("dilation must be ≥ 0");
  return {t.data_ptr<float>(), {t.size(0), t.size(1), t.size(2)}};
}

DT_CLONES void squared_difference(float* __restrict out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = (a[i] - b[i]) * (a[i] - b[i]);
}

DT_CLONES void sum3(float* __restrict out, const float* a, const float* b, const float* c, float scale, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = (a[i] + b[i] + c[i]) * scale;
}

// out[z] = line[z − 1] + line[z] + line[z + 1] with the line's ends replicated.
void box_row(float* __restrict out, const float* line, int64_t n) {
  if (n == 1) {
    out[0] = 3 * line[0];
    return;
  }
  out[0] = 2 * line[0] + line[1];
  sum3(out + 1, line, line + 1, line + 2, 1.0f, n - 2);
  out[n - 1] = line[n - 2] + 2 * line[n - 1];
}

// The replicate-padded 3×3×3 mean of the squared difference of the image shifted by `a` and by `b`,
// into `out` (W, H, D), with `scratch` of the same size.
void box_filtered_distance(const Image& im, const int64_t* a, const int64_t* b, float* out, float* scratch) {
  const int64_t W = im.n[0], H = im.n[1], D = im.n[2], plane = H * D;
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> ra(D), rb(D), sq(D);
    for (int64_t x = begin; x < end; x++)
      for (int64_t y = 0; y < H; y++) {
        im.shifted_row(x, y, a, ra.data());
        im.shifted_row(x, y, b, rb.data());
        squared_difference(sq.data(), ra.data(), rb.data(), D);
        box_row(out + x * plane + y * D, sq.data(), D);
      }
  });
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; x++)
      for (int64_t y = 0; y < H; y++) {
        const float* p = out + x * plane;
        sum3(scratch + x * plane + y * D, p + clamped(y - 1, H) * D, p + y * D, p + clamped(y + 1, H) * D, 1.0f, D);
      }
  });
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; x++)
      sum3(out + x * plane, scratch + clamped(x - 1, W) * plane, scratch + x * plane,
           scratch + clamped(x + 1, W) * plane, 1.0f / 27, plane);
  });
}

DT_CLONES void channel_mean(float* __restrict out, const float* c0, int64_t channels, int64_t stride, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = 0;
  for (int64_t c = 0; c < channels; c++)
    for (int64_t i = 0; i < n; i++) out[i] += c0[c * stride + i];
  for (int64_t i = 0; i < n; i++) out[i] /= static_cast<float>(channels);
}

// mind[c] = exp(−distance[c] / v) / max(max_c exp(−distance[c] / v), 1e-12), v the clamped variance; in place.
DT_CLONES void mind_from_distances(float* c0, const float* variance, int64_t channels, int64_t stride, int64_t n,
                                   float lo, float hi) {
  float least[256], scale[256];
  for (int64_t s = 0; s < n; s += 256) {
    const int64_t m = std::min<int64_t>(256, n - s);
    for (int64_t i = 0; i < m; i++) least[i] = c0[s + i];
    for (int64_t c = 1; c < channels; c++)
      for (int64_t i = 0; i < m; i++) least[i] = std::min(least[i], c0[c * stride + s + i]);
    for (int64_t i = 0; i < m; i++) {
      scale[i] = -1.0f / std::min(std::max(variance[s + i], lo), hi);
      least[i] = 1.0f / std::max(exp_fast(least[i] * scale[i]), 1e-12f);
    }
    for (int64_t c = 0; c < channels; c++) {
      float* d = c0 + c * stride + s;
      for (int64_t i = 0; i < m; i++) d[i] = exp_fast(d[i] * scale[i]) * least[i];
    }
  }
}

// mind_ssc(image (W, H, D) float32, dilation [3]) → (C, W, H, D): MIND-SSC (Heinrich et al. 2013). The
// neighbours are ±dilation[a] along each axis a with dilation[a] > 0 (in that order, + first); the
// channels are the pairs (i < j) of neighbours on different axes — 12 with three axes, 4 with two. Each is
// the squared difference of the image at the two neighbours, averaged over the 3×3×3 box (replicate
// borders); v = their channel mean clamped to [0.001, 1000]·its image mean; exp(−d / v) over its channel
// maximum.
at::Tensor mind_ssc(Info info) {
  const at::Tensor image = T(info[0]);
  const std::vector<int64_t> dilation = ints(info[1]);
  const Image im = image_arg(image, dilation);
  std::vector<std::array<int64_t, 3>> six;
  std::vector<int> axis_of;
  for (int a = 0; a < 3; a++)
    if (dilation[a] > 0)
      for (int64_t sign : {1, -1}) {
        std::array<int64_t, 3> o{0, 0, 0};
        o[a] = sign * dilation[a];
        six.push_back(o);
        axis_of.push_back(a);
      }
  std::vector<std::pair<int, int>> pairs;
  for (size_t i = 0; i < six.size(); i++)
    for (size_t j = i + 1; j < six.size(); j++)
      if (axis_of[i] != axis_of[j]) pairs.emplace_back(i, j);
  if (pairs.empty()) throw ArgError("MIND-SSC needs a dilation > 0 along at least two axes");

  const int64_t n = im.n[0] * im.n[1] * im.n[2], channels = static_cast<int64_t>(pairs.size());
  at::Tensor out = at::empty({channels, im.n[0], im.n[1], im.n[2]}, at::kFloat);
  at::Tensor scratch = at::empty({n}, at::kFloat);
  float *op = out.data_ptr<float>(), *sp = scratch.data_ptr<float>();
  for (int64_t c = 0; c < channels; c++)
    box_filtered_distance(im, six[pairs[c].first].data(), six[pairs[c].second].data(), op + c * n, sp);

  const int64_t block = 4096, blocks = (n + block - 1) / block;
  std::vector<double> partial(blocks);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      const int64_t s = b * block, m = std::min(block, n - s);
      channel_mean(sp + s, op + s, channels, n, m);
      double sum = 0;
      for (int64_t i = 0; i < m; i++) sum += sp[s + i];
      partial[b] = sum;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  const float mean = static_cast<float>(total / static_cast<double>(n));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      const int64_t s = b * block;
      mind_from_distances(op + s, sp + s, channels, n, std::min(block, n - s), mean * 0.001f, mean * 1000.0f);
    }
  });
  return out;
}

DT_CLONES void subtract_mean(float* __restrict out, const float* sum, float count, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] -= sum[i] / count;
}

// dilated_patches(image (W, H, D) float32, dilation [3]) → (K, W, H, D): the image at the offsets
// (a·dilation[0], b·dilation[1], c·dilation[2]), a, b, c in {−1, 0, 1} (only 0 along an axis of dilation
// 0), a slowest, indices clamped to the image; minus their mean over the K offsets.
at::Tensor dilated_patches(Info info) {
  const at::Tensor image = T(info[0]);
  const std::vector<int64_t> dilation = ints(info[1]);
  const Image im = image_arg(image, dilation);
  std::vector<std::array<int64_t, 3>> offsets;
  auto steps = [&](int a) { return dilation[a] > 0 ? std::vector<int64_t>{-1, 0, 1} : std::vector<int64_t>{0}; };
  for (int64_t a : steps(0))
    for (int64_t b : steps(1))
      for (int64_t c : steps(2)) offsets.push_back({a * dilation[0], b * dilation[1], c * dilation[2]});
  const int64_t W = im.n[0], H = im.n[1], D = im.n[2], n = W * H * D, k = static_cast<int64_t>(offsets.size());
  at::Tensor out = at::empty({k, W, H, D}, at::kFloat);
  float* op = out.data_ptr<float>();
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sum(D);
    for (int64_t x = begin; x < end; x++)
      for (int64_t y = 0; y < H; y++) {
        const int64_t row = (x * H + y) * D;
        std::fill(sum.begin(), sum.end(), 0.0f);
        for (int64_t j = 0; j < k; j++) {
          im.shifted_row(x, y, offsets[j].data(), op + j * n + row);
          add_into(sum.data(), op + j * n + row, D);
        }
        for (int64_t j = 0; j < k; j++) subtract_mean(op + j * n + row, sum.data(), static_cast<float>(k), D);
      }
  });
  return out;
}

}  // namespace

void register_descriptor_ops(Napi::Env env, Exports e) {
  def<tensor_op<mind_ssc>>(env, e, "mind_ssc");
  def<tensor_op<dilated_patches>>(env, e, "dilated_patches");
}

}  // namespace dt
