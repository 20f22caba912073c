// Cosine-similarity search over trilinearly upsampled feature levels, fused into one pass.
//
// MedDIFT compares a query descriptor with the descriptor of every voxel of the target's ORIGINAL grid,
// where each level's features are upsampled trilinearly (align_corners false) and L2-normalised. Since
// the upsampling is linear, ⟨q, U(L)(v)⟩ is the upsampled map of the coarse dot products ⟨q, L⟩ ("dots",
// computed by one matrix product beforehand), and ‖U(L)(v)‖² is a quadratic form in the 8 corner weights
// over the corner Gram maps ⟨L[p + a], L[p + b]⟩ ("gram"). This kernel evaluates both per target voxel,
// sums the per-level cosines and keeps each query's best candidates, so neither full-resolution features
// nor full similarity volumes are ever stored. Tensor ops for the same did 10–20× more memory traffic.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common.h"

namespace dt {
namespace {

using Info = const Napi::CallbackInfo&;

// Linear-interpolation taps of output index `dst`, as PyTorch's CPU upsampling computes them in float.
struct Tap {
  int64_t i0, i1;
  float w1;
};

Tap tap(int64_t dst, int64_t in, int64_t out) {
  float scale = static_cast<float>(in) / static_cast<float>(out);
  float src = scale * (static_cast<float>(dst) + 0.5f) - 0.5f;
  if (src < 0) src = 0;
  int64_t i0 = std::min<int64_t>(static_cast<int64_t>(src), in - 1);
  return {i0, i0 < in - 1 ? i0 + 1 : i0, src - static_cast<float>(i0)};
}

struct Level {
  const float* dots;  // (w, h, d, queries), channels last: one query vector per coarse voxel
  const float* gram;  // (w, h, d, 36): corner pairs (a ≤ b), corner bits 0, 1, 2 = axes 0, 1, 2
  int64_t h, d;
  std::vector<Tap> taps[3];  // per output index of the box, per axis
  int64_t zmin, zmax;        // coarse range of the last axis the box touches
};

DT_CLONES void combine4(float* __restrict out, const float* a, const float* b, const float* c, const float* d,
                        float wa, float wb, float wc, float wd, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
}

DT_CLONES void accumulate2(float* __restrict acc, const float* a, const float* b, float wa, float wb, int64_t n) {
  for (int64_t i = 0; i < n; i++) acc[i] += wa * a[i] + wb * b[i];
}

DT_CLONES float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

DT_CLONES void accumulate_squared_difference(float* __restrict acc, const float* __restrict a, float b, int64_t n) {
  for (int64_t i = 0; i < n; i++) acc[i] += (a[i] - b) * (a[i] - b);
}

// The position of the first least value of v[0, n): the minimum kept in 16 lanes (vectorised, where
// std::min_element's loop is not), then the first position holding it.
DT_CLONES int64_t first_least(const float* __restrict v, int64_t n) {
  float lane[16];
  std::fill(lane, lane + 16, std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) lane[j] = v[i + j] < lane[j] ? v[i + j] : lane[j];
  float least = *std::min_element(lane, lane + 16);
  for (; i < n; i++) least = std::min(least, v[i]);
  for (i = 0; i < n; i++)
    if (v[i] == least) return i;
  return 0;  // all NaN
}

DT_CLONES bool any_greater(const float* __restrict v, const float* __restrict threshold, int64_t n) {
  int hit = 0;
  for (int64_t i = 0; i < n; i++) hit |= v[i] > threshold[i];
  return hit != 0;
}

// Each query's K best (value, flat index), unordered, with the position of the smallest for replacement.
struct Best {
  int64_t k;
  std::vector<float> values, floor;
  std::vector<int64_t> index, floor_at;
  Best(int64_t queries, int64_t k)
      : k(k),
        values(queries * k, -std::numeric_limits<float>::infinity()),
        floor(queries, -std::numeric_limits<float>::infinity()),
        index(queries * k, -1),
        floor_at(queries, 0) {}
  void offer(const float* v, int64_t flat, int64_t queries) {
    if (!any_greater(v, floor.data(), queries)) return;
    for (int64_t q = 0; q < queries; q++) {
      if (!(v[q] > floor[q])) continue;
      float* vals = &values[q * k];
      vals[floor_at[q]] = v[q];
      index[q * k + floor_at[q]] = flat;
      int64_t at = 0;
      for (int64_t j = 1; j < k; j++)
        if (vals[j] < vals[at]) at = j;
      floor[q] = vals[at];
      floor_at[q] = at;
    }
  }
};

// corner_gram(level (C, w, h, d) float32) → (w, h, d, 36): for each base voxel p and each pair a ≤ b of the
// 8 corners of the trilinear cell at p (bits 0, 1, 2 = +1 along axes 0, 1, 2, clamped at the far border as
// the interpolation clamps them), ⟨L[p + a], L[p + b]⟩ over the channels.
at::Tensor corner_gram(Info info) {
  const at::Tensor& level = T(info[0]);
  if (level.dim() != 4 || level.scalar_type() != at::kFloat)
    throw ArgError("corner_gram needs a float32 (C, w, h, d) tensor");
  const int64_t c = level.size(0), w = level.size(1), h = level.size(2), d = level.size(3);
  at::Tensor last = level.permute({1, 2, 3, 0}).contiguous();
  at::Tensor out = at::empty({w, h, d, 36}, at::kFloat);
  const float* x = last.data_ptr<float>();
  float* g = out.data_ptr<float>();
  at::parallel_for(0, w, 1, [&](int64_t begin, int64_t end) {
    const float* corner[8];
    for (int64_t i = begin; i < end; i++)
      for (int64_t j = 0; j < h; j++)
        for (int64_t k = 0; k < d; k++) {
          for (int a = 0; a < 8; a++) {
            int64_t ii = std::min(i + (a & 1), w - 1), jj = std::min(j + ((a >> 1) & 1), h - 1),
                    kk = std::min(k + ((a >> 2) & 1), d - 1);
            corner[a] = x + ((ii * h + jj) * d + kk) * c;
          }
          float* o = g + ((i * h + j) * d + k) * 36;
          for (int a = 0, p = 0; a < 8; a++)
            for (int b = a; b < 8; b++, p++) o[p] = dot(corner[a], corner[b], c);
        }
  });
  return out;
}

// nearest_rows(x (N, c) float32, e (K, c) float32) → (N) int64: for each row of x, the index of the row of e
// at the least squared Euclidean distance, the lowest index among equal distances (torch.argmin's). The VQ
// autoencoder quantises 4096 latent vectors per step against 16384 codes: the tensor ops (‖x‖² − 2x·eᵀ +
// ‖e‖², argmin) built four (4096, 16384) matrices of 268 MB each, and their fresh pages made quantisation
// 1.2–1.7 s of a 3.4 s training step, measured here; this kernel keeps one row of distances in cache and
// takes 25 ms (the step 0.8 s, the KL autoencoder's 0.67 s, one thread).
at::Tensor nearest_rows(Info info) {
  const at::Tensor &x = T(info[0]), &e = T(info[1]);
  if (x.dim() != 2 || e.dim() != 2 || x.scalar_type() != at::kFloat || e.scalar_type() != at::kFloat)
    throw ArgError("nearest_rows needs float32 (N, c) and (K, c) tensors");
  if (x.size(1) != e.size(1) || e.size(0) < 1) throw ArgError("nearest_rows needs rows of equal length and K >= 1");
  const int64_t n = x.size(0), c = x.size(1), k = e.size(0);
  at::Tensor xs = x.contiguous(), columns = e.t().contiguous();  // (c, K): one code coordinate per pass
  at::Tensor out = at::empty({n}, at::kLong);
  const float* xp = xs.data_ptr<float>();
  const float* ep = columns.data_ptr<float>();
  int64_t* op = out.data_ptr<int64_t>();
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> distance(k);
    for (int64_t i = begin; i < end; i++) {
      std::fill(distance.begin(), distance.end(), 0.0f);
      for (int64_t j = 0; j < c; j++) accumulate_squared_difference(distance.data(), ep + j * k, xp[i * c + j], k);
      op[i] = first_least(distance.data(), k);
    }
  });
  return out;
}

// interpolated_cosine_search(dots[], gram[], size[3], lo[3], hi[3], first, count, k, window | null)
//   dots[l]: (w_l, h_l, d_l, Q) float32, contiguous; gram[l]: (w_l, h_l, d_l, 36) float32, contiguous.
//   Scores the target voxels of the box [lo, hi) of a grid of `size` for queries [first, first + count):
//   Σ_l ⟨q, U(L_l)(v)⟩ / max(‖U(L_l)(v)‖, 1e-8). window = [c0, c1, c2, s0, s1, s2, r] keeps only voxels with
//   Σ ((v − c)·s)² ≤ r². k > 0: returns [values (count, k') float32 descending, indices (count, k') int64
//   flat C-order indices of the whole grid, lowest first among equal values], k' = min(k, box voxels);
//   k = 0: returns the scores (count, box) themselves (−inf outside the window).
Napi::Value interpolated_cosine_search(Info info) {
  return guard(info, [&]() -> Napi::Value {
    auto dots = tensors(info[0]), gram = tensors(info[1]);
    auto size = ints(info[2]), lo = ints(info[3]), hi = ints(info[4]);
    int64_t first = I(info[5]), count = I(info[6]), k = I(info[7]);
    std::vector<double> window = absent(info[8]) ? std::vector<double>{} : doubles(info[8]);
    if (dots.empty() || dots.size() != gram.size())
      throw ArgError("dots and gram must be non-empty lists of equal length");
    if (size.size() != 3 || lo.size() != 3 || hi.size() != 3) throw ArgError("size, lo and hi need 3 values each");
    for (int a = 0; a < 3; a++)
      if (lo[a] < 0 || hi[a] > size[a] || hi[a] <= lo[a])
        throw ArgError("the box must be a non-empty part of the grid");
    if (!window.empty() && window.size() != 7) throw ArgError("window needs 7 values (centre, spacing, radius)");
    const int64_t queries = dots[0].size(3);
    if (first < 0 || count < 1 || first + count > queries) throw ArgError("query range outside the dots' last axis");
    if (k < 0) throw ArgError("k must be ≥ 0");

    std::vector<Level> levels(dots.size());
    for (size_t l = 0; l < dots.size(); l++) {
      const at::Tensor &dt = dots[l], &gt = gram[l];
      if (dt.dim() != 4 || dt.scalar_type() != at::kFloat || !dt.is_contiguous() || dt.size(3) != queries)
        throw ArgError("dots must be contiguous float32 (w, h, d, Q) tensors with the same Q");
      if (gt.dim() != 4 || gt.scalar_type() != at::kFloat || !gt.is_contiguous() || gt.size(3) != 36 ||
          gt.size(0) != dt.size(0) || gt.size(1) != dt.size(1) || gt.size(2) != dt.size(2))
        throw ArgError("gram must be contiguous float32 (w, h, d, 36) tensors on the dots' grids");
      Level& L = levels[l];
      L.dots = dt.data_ptr<float>();
      L.gram = gt.data_ptr<float>();
      L.h = dt.size(1);
      L.d = dt.size(2);
      for (int a = 0; a < 3; a++)
        for (int64_t o = lo[a]; o < hi[a]; o++) L.taps[a].push_back(tap(o, dt.size(a), size[a]));
      L.zmin = L.taps[2].front().i0;
      L.zmax = L.taps[2].back().i1;
    }

    const int64_t n0 = hi[0] - lo[0], n1 = hi[1] - lo[1], n2 = hi[2] - lo[2];
    const int64_t box = n0 * n1 * n2;
    const bool dense = k == 0;
    const int64_t keep = std::min(k, box);
    at::Tensor scores = dense ? at::empty({count, box}, at::kFloat) : at::Tensor();
    float* out = dense ? scores.data_ptr<float>() : nullptr;
    const int threads = at::get_num_threads();
    std::vector<std::unique_ptr<Best>> best(threads);
    const float ninf = -std::numeric_limits<float>::infinity();

    at::parallel_for(lo[0], hi[0], 1, [&](int64_t begin, int64_t end) {
      const int thread = at::get_thread_num();
      if (!dense && !best[thread]) best[thread] = std::make_unique<Best>(count, keep);
      Best* mine = dense ? nullptr : best[thread].get();
      int64_t span = 0;
      for (const Level& L : levels) span = std::max(span, L.zmax - L.zmin + 1);
      std::vector<float> acc(n2 * count), line(span * count);
      for (int64_t x = begin; x < end; x++) {
        for (int64_t y = lo[1]; y < hi[1]; y++) {
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (const Level& L : levels) {
            const Tap &tx = L.taps[0][x - lo[0]], &ty = L.taps[1][y - lo[1]];
            const float wx[2] = {1 - tx.w1, tx.w1}, wy[2] = {1 - ty.w1, ty.w1};
            auto row = [&](int64_t i, int64_t j, int64_t z) {
              return L.dots + ((i * L.h + j) * L.d + z) * queries + first;
            };
            // The dot products interpolated along axes 0 and 1 for the coarse line the box's last axis needs.
            for (int64_t z = L.zmin; z <= L.zmax; z++)
              combine4(&line[(z - L.zmin) * count], row(tx.i0, ty.i0, z), row(tx.i0, ty.i1, z), row(tx.i1, ty.i0, z),
                       row(tx.i1, ty.i1, z), wx[0] * wy[0], wx[0] * wy[1], wx[1] * wy[0], wx[1] * wy[1], count);
            for (int64_t z = 0; z < n2; z++) {
              const Tap& tz = L.taps[2][z];
              const float wz[2] = {1 - tz.w1, tz.w1};
              float corner[8];
              for (int c = 0; c < 8; c++) corner[c] = wx[c & 1] * wy[(c >> 1) & 1] * wz[(c >> 2) & 1];
              const float* g = L.gram + ((tx.i0 * L.h + ty.i0) * L.d + tz.i0) * 36;
              float squared = 0;
              for (int a = 0, p = 0; a < 8; a++)
                for (int b = a; b < 8; b++, p++) squared += (a == b ? 1.0f : 2.0f) * corner[a] * corner[b] * g[p];
              const float inverse = 1.0f / std::sqrt(std::max(squared, 1e-16f));
              accumulate2(&acc[z * count], &line[(tz.i0 - L.zmin) * count], &line[(tz.i1 - L.zmin) * count],
                          inverse * wz[0], inverse * wz[1], count);
            }
          }
          for (int64_t z = 0; z < n2; z++) {
            float* v = &acc[z * count];
            if (window.size() == 7) {
              double r2 = 0;
              const int64_t at[3] = {x, y, lo[2] + z};
              for (int a = 0; a < 3; a++) r2 += std::pow((at[a] - window[a]) * window[3 + a], 2);
              if (r2 > window[6] * window[6]) std::fill(v, v + count, ninf);
            }
            if (dense) {
              const int64_t voxel = ((x - lo[0]) * n1 + (y - lo[1])) * n2 + z;
              for (int64_t q = 0; q < count; q++) out[q * box + voxel] = v[q];
            } else {
              mine->offer(v, (x * size[1] + y) * size[2] + lo[2] + z, count);
            }
          }
        }
      }
    });
    if (dense) return wrap(info.Env(), scores);

    // Merge the threads' candidates: value descending, then flat index ascending (torch.argmax's first maximum).
    at::Tensor values = at::empty({count, keep}, at::kFloat), indices = at::empty({count, keep}, at::kLong);
    float* vo = values.data_ptr<float>();
    int64_t* io = indices.data_ptr<int64_t>();
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t q = 0; q < count; q++) {
      all.clear();
      for (const auto& b : best)
        if (b)
          for (int64_t j = 0; j < keep; j++) all.emplace_back(b->values[q * keep + j], b->index[q * keep + j]);
      std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      for (int64_t j = 0; j < keep; j++) {
        vo[q * keep + j] = all[j].first;
        io[q * keep + j] = all[j].second;
      }
    }
    return wrap_all(info.Env(), {values, indices});
  });
}

}  // namespace

void register_search_ops(Napi::Env env, Exports e) {
  def<tensor_op<corner_gram>>(env, e, "corner_gram");
  def<interpolated_cosine_search>(env, e, "interpolated_cosine_search");
  def<tensor_op<nearest_rows>>(env, e, "nearest_rows");
}

}  // namespace dt
