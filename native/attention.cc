// softmax(q·kᵀ·scale)·v without the (L, S) score matrix in memory, for inference. libtorch 1.13 has no fused
// attention on the CPU; its composition writes, rescales, normalises and reads the whole score matrix (2 GB
// for MAISI's 8192-token level at CT size) and ran at ~20 GFLOP/s here. This kernel (~125 GFLOP/s there)
// takes 16 query rows at a time: their scores against all keys stay in L2, and both products run as
// register-tiled FMA loops.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "fastmath.h"

namespace dt {
namespace {

// 16-float vectors (GCC vector extensions): one AVX-512 register, two AVX2 or four SSE ones in the other
// clones. The helpers are always inlined, so the ABI note GCC gives for 64-byte vector returns is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));  // unaligned access

inline v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store(float* p, v16 x) { *reinterpret_cast<v16u*>(p) = x; }

// Query rows per tile: 16 independent accumulators keep both FMA pipes busy, and each pass over the keys
// and values serves 16 rows (8: 110 GFLOP/s, 16: 125 GFLOP/s at 8192 tokens, 8 heads of 32).
constexpr int64_t ROWS = 16;

// One tile of ROWS query rows of one head. q: (ROWS, E), already scaled (rows past the last are zero);
// kt: (E, S), the keys transposed; v: (S, Ev); out: (rows, Ev) with row stride Ev; s: scratch (ROWS, S).
DT_CLONES void attention_tile(const float* q, const float* kt, const float* v, float* out, float* s, int64_t rows,
                              int64_t S, int64_t E, int64_t Ev) {
  // Scores, 16 keys at a time.
  int64_t j = 0;
  for (; j + 16 <= S; j += 16) {
    v16 acc[ROWS] = {};
    for (int64_t e = 0; e < E; e++) {
      const v16 k = load(kt + e * S + j);
      for (int64_t r = 0; r < ROWS; r++) acc[r] += q[r * E + e] * k;
    }
    for (int64_t r = 0; r < ROWS; r++) store(s + r * S + j, acc[r]);
  }
  for (; j < S; j++)
    for (int64_t r = 0; r < ROWS; r++) {
      float acc = 0;
      for (int64_t e = 0; e < E; e++) acc += q[r * E + e] * kt[e * S + j];
      s[r * S + j] = acc;
    }
  // Softmax numerators (max subtracted) and their sums, row by row; the reductions run over 16 lanes
  // (GCC does not vectorise float max/sum reductions without -ffast-math).
  float inverse_sum[ROWS];
  for (int64_t r = 0; r < ROWS; r++) {
    float* row = s + r * S;
    v16 lanes = v16{} + row[0];
    for (int64_t i = 0; i + 16 <= S; i += 16) {
      const v16 x = load(row + i);
      lanes = x > lanes ? x : lanes;
    }
    float m = row[0];
    for (int64_t i = 0; i < 16; i++) m = std::max(m, lanes[i]);
    for (int64_t i = S - S % 16; i < S; i++) m = std::max(m, row[i]);
    for (int64_t i = 0; i < S; i++) row[i] = exp_fast(row[i] - m);
    v16 sums = {};
    for (int64_t i = 0; i + 16 <= S; i += 16) sums += load(row + i);
    float sum = 0;
    for (int64_t i = 0; i < 16; i++) sum += sums[i];
    for (int64_t i = S - S % 16; i < S; i++) sum += row[i];
    inverse_sum[r] = 1.f / sum;
  }
  // Weighted values, 16 value channels at a time.
  for (int64_t c = 0; c < Ev; c += 16) {
    v16 acc[ROWS] = {};
    for (int64_t i = 0; i < S; i++) {
      const v16 x = load(v + i * Ev + c);
      for (int64_t r = 0; r < ROWS; r++) acc[r] += s[r * S + i] * x;
    }
    for (int64_t r = 0; r < rows; r++) store(out + r * Ev + c, acc[r] * inverse_sum[r]);
  }
}

}  // namespace

bool fused_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const bool grad = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (grad || q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim()) return false;
  for (const auto& t : {q, k, v})
    if (t.scalar_type() != at::kFloat) return false;
  const auto batch = q.sizes().slice(0, q.dim() - 2);
  return k.sizes().slice(0, q.dim() - 2).equals(batch) && v.sizes().slice(0, q.dim() - 2).equals(batch) &&
         q.size(-1) > 0 && k.size(-1) == q.size(-1) && v.size(-2) == k.size(-2) && v.size(-1) % 16 == 0 &&
         k.size(-2) > 0;
}

at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const int64_t L = q.size(-2), S = k.size(-2), E = q.size(-1), Ev = v.size(-1);
  const at::Tensor qs = (q * scale).contiguous(), kt = k.transpose(-2, -1).contiguous(), vc = v.contiguous();
  std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
  shape.back() = Ev;
  at::Tensor out = at::empty(shape, q.options());
  const int64_t heads = q.numel() / std::max<int64_t>(1, L * E), tiles = (L + ROWS - 1) / ROWS;
  const float *qp = qs.data_ptr<float>(), *kp = kt.data_ptr<float>(), *vp = vc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, heads * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(ROWS * S), query(ROWS * E);
    for (int64_t task = begin; task < end; task++) {
      const int64_t h = task / tiles, l0 = (task % tiles) * ROWS, rows = std::min(ROWS, L - l0);
      std::fill(query.begin(), query.end(), 0.f);
      std::copy(qp + (h * L + l0) * E, qp + (h * L + l0 + rows) * E, query.begin());
      attention_tile(query.data(), kp + h * E * S, vp + h * S * Ev, op + (h * L + l0) * Ev, scores.data(), rows,
                     S, E, Ev);
    }
  });
  return out;
}

}  // namespace dt
