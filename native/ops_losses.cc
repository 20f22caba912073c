// Registration losses with closed-form gradients, each one pass without autograd's graph: local normalised
// cross-correlation and the folding hinge. Autograd receives the gradient through Σ x·∂L/∂x
// (models/losses).
//
// Local NCC (VoxelMorph's NCC² over a box window).
// As tensor ops the loss took five separable convolutions per side and autograd's backward through them,
// the conversions and the window counts: 470 ms of a 620 ms intensity-refinement iteration on a
// 76 × 91 × 76 lattice (one thread, measured). The gradient has a closed form: with box means m_x over the
// window W(p) ∩ grid (n(p) voxels) and the loss L(m_a, m_b, m_aa, m_bb, m_ab), a symmetric window gives
//   ∂L/∂b(q) = S[∂L/∂m_b / n](q) + 2·b(q)·S[∂L/∂m_bb / n](q) + a(q)·S[∂L/∂m_ab / n](q)
// (S the box sum over the grid), and likewise for a: ten box sums in all, each a few adds per voxel.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common.h"

namespace dt {
namespace {

using Info = const Napi::CallbackInfo&;

// The sum of `in` over the window of ±r[a] voxels along each axis a, clipped to the grid of n[0] × n[1] ×
// n[2] voxels, into `out`; `s1`, `s2` are scratch of the same size.
void box_sum(const float* in, float* out, float* s1, float* s2, const int64_t* n, const int64_t* r) {
  const int64_t W = n[0], H = n[1], D = n[2], plane = H * D;
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; x++)
      for (int64_t y = 0; y < H; y++) {
        const float* src = in + x * plane + y * D;
        float* dst = s1 + x * plane + y * D;
        std::fill(dst, dst + D, 0.0f);
        for (int64_t k = -r[2]; k <= r[2]; k++) {
          const int64_t lo = std::clamp<int64_t>(-k, 0, D), hi = std::clamp<int64_t>(D - k, 0, D);
          if (hi > lo) add_into(dst + lo, src + lo + k, hi - lo);
        }
      }
  });
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; x++)
      for (int64_t y = 0; y < H; y++) {
        float* dst = s2 + x * plane + y * D;
        std::fill(dst, dst + D, 0.0f);
        for (int64_t k = std::max<int64_t>(-r[1], -y); k <= std::min<int64_t>(r[1], H - 1 - y); k++)
          add_into(dst, s1 + x * plane + (y + k) * D, D);
      }
  });
  at::parallel_for(0, W, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; x++) {
      float* dst = out + x * plane;
      std::fill(dst, dst + plane, 0.0f);
      for (int64_t k = std::max<int64_t>(-r[0], -x); k <= std::min<int64_t>(r[0], W - 1 - x); k++)
        add_into(dst, s2 + (x + k) * plane, plane);
    }
  });
}

// Voxels of the window around index i along an axis of n voxels, clipped to it.
int64_t inside(int64_t i, int64_t r, int64_t n) { return std::min(n - 1, i + r) - std::max<int64_t>(0, i - r) + 1; }

// local_ncc(a (V, W, H, D), b (V, W, H, D) float32, window [3] odd, eps) → [loss (), ∂L/∂a, ∂L/∂b]:
// L = −mean over volumes and voxels of cov² / (var_a·var_b + eps), the moments box means over the window
// clipped to the grid (VoxelMorph's local NCC, averaged over the voxels inside the grid only).
Napi::Value local_ncc(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor &ta = T(info[0]), &tb = T(info[1]);
    const std::vector<int64_t> window = ints(info[2]);
    const double eps = D(info[3]);
    if (ta.dim() != 4 || ta.scalar_type() != at::kFloat || !ta.sizes().equals(tb.sizes()) ||
        tb.scalar_type() != at::kFloat)
      throw ArgError("local_ncc needs two float32 (V, W, H, D) tensors of one shape");
    if (window.size() != 3) throw ArgError("the window needs 3 values");
    for (int64_t w : window)
      if (w < 1 || w % 2 == 0) throw ArgError("the window must be odd numbers of voxels");
    const at::Tensor a = ta.contiguous(), b = tb.contiguous();
    const int64_t volumes = a.size(0), n[3] = {a.size(1), a.size(2), a.size(3)}, voxels = n[0] * n[1] * n[2];
    const int64_t r[3] = {window[0] / 2, window[1] / 2, window[2] / 2};
    at::Tensor grad_a = at::empty_like(a), grad_b = at::empty_like(b);
    // Five maps, their five box sums, two scratch volumes.
    at::Tensor work = at::empty({12, voxels}, at::kFloat);
    float* maps = work.data_ptr<float>();
    float *sums = maps + 5 * voxels, *s1 = maps + 10 * voxels, *s2 = maps + 11 * voxels;
    const double scale = -1.0 / static_cast<double>(volumes * voxels);
    const int64_t plane = n[1] * n[2];
    std::vector<double> partial(n[0]);
    double total = 0;
    for (int64_t v = 0; v < volumes; v++) {
      const float *ap = a.data_ptr<float>() + v * voxels, *bp = b.data_ptr<float>() + v * voxels;
      at::parallel_for(0, voxels, 4096, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) {
          maps[i] = ap[i];
          maps[voxels + i] = bp[i];
          maps[2 * voxels + i] = ap[i] * ap[i];
          maps[3 * voxels + i] = bp[i] * bp[i];
          maps[4 * voxels + i] = ap[i] * bp[i];
        }
      });
      for (int k = 0; k < 5; k++) box_sum(maps + k * voxels, sums + k * voxels, s1, s2, n, r);
      // Per voxel: the loss and ∂L/∂m_x / n(p) for the five moments, into the maps' memory.
      at::parallel_for(0, n[0], 1, [&](int64_t begin, int64_t end) {
        for (int64_t x = begin; x < end; x++) {
          double sum = 0;
          const int64_t cx = inside(x, r[0], n[0]);
          for (int64_t y = 0; y < n[1]; y++) {
            const int64_t cxy = cx * inside(y, r[1], n[1]);
            for (int64_t z = 0; z < n[2]; z++) {
              const int64_t i = x * plane + y * n[2] + z;
              const float count = static_cast<float>(cxy * inside(z, r[2], n[2]));
              const float ma = sums[i] / count, mb = sums[voxels + i] / count;
              const float var_a = sums[2 * voxels + i] / count - ma * ma;
              const float var_b = sums[3 * voxels + i] / count - mb * mb;
              const float cov = sums[4 * voxels + i] / count - ma * mb;
              const float den = var_a * var_b + static_cast<float>(eps), cc = cov * cov / den;
              sum += cc;
              const float s = static_cast<float>(scale) / count;
              const float d_cov = 2 * cov / den * s, d_var_a = -cc * var_b / den * s, d_var_b = -cc * var_a / den * s;
              maps[i] = -2 * ma * d_var_a - mb * d_cov;
              maps[voxels + i] = -2 * mb * d_var_b - ma * d_cov;
              maps[2 * voxels + i] = d_var_a;
              maps[3 * voxels + i] = d_var_b;
              maps[4 * voxels + i] = d_cov;
            }
          }
          partial[x] = sum;
        }
      });
      for (double p : partial) total += p;
      for (int k = 0; k < 5; k++) box_sum(maps + k * voxels, sums + k * voxels, s1, s2, n, r);
      float *ga = grad_a.data_ptr<float>() + v * voxels, *gb = grad_b.data_ptr<float>() + v * voxels;
      at::parallel_for(0, voxels, 4096, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) {
          const float s_ab = sums[4 * voxels + i];
          ga[i] = sums[i] + 2 * ap[i] * sums[2 * voxels + i] + bp[i] * s_ab;
          gb[i] = sums[voxels + i] + 2 * bp[i] * sums[3 * voxels + i] + ap[i] * s_ab;
        }
      });
    }
    at::Tensor loss = at::scalar_tensor(scale * total, at::kFloat);
    return wrap_all(info.Env(), {loss, grad_a, grad_b});
  });
}

// The cofactor matrix of J (∂det/∂J) and det J.
float cofactors(const float J[3][3], float C[3][3]) {
  C[0][0] = J[1][1] * J[2][2] - J[1][2] * J[2][1];
  C[0][1] = J[1][2] * J[2][0] - J[1][0] * J[2][2];
  C[0][2] = J[1][0] * J[2][1] - J[1][1] * J[2][0];
  C[1][0] = J[0][2] * J[2][1] - J[0][1] * J[2][2];
  C[1][1] = J[0][0] * J[2][2] - J[0][2] * J[2][0];
  C[1][2] = J[0][1] * J[2][0] - J[0][0] * J[2][1];
  C[2][0] = J[0][1] * J[1][2] - J[0][2] * J[1][1];
  C[2][1] = J[0][2] * J[1][0] - J[0][0] * J[1][2];
  C[2][2] = J[0][0] * J[1][1] - J[0][1] * J[1][0];
  return J[0][0] * C[0][0] + J[0][1] * C[0][1] + J[0][2] * C[0][2];
}

// folding_hinge(u (B, 3, w, h, d) float32 in voxels, margin, corners) → [loss (), ∂loss/∂u]: over the cells
// between 2 × 2 × 2 voxels, Σ max(0, margin − det J)², J = I + ∇u from the cell's edges: with corners = 1
// the three edges leaving its first voxel (forward differences, as forwardJacobianDeterminant); with 8 the
// mean over its eight corners, each with the three edges meeting there — the Jacobians of the trilinear
// field at the corners, so that a fold between the lattice's voxels on a finer grid is seen too. As tensor
// ops with autograd the forward version took 94 of 162 ms of an intensity-refinement iteration on a
// 76 × 91 × 76 lattice once NCC was fused (one thread, measured). ∂loss/∂J = −2·max(0, margin − det J)·
// cof(J), scattered onto the edges' ends; cells of even, then odd x in parallel, so no two threads write
// one voxel.
Napi::Value folding_hinge(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor& tu = T(info[0]);
    const double margin = D(info[1]);
    const int64_t corners = I(info[2]);
    if (tu.dim() != 5 || tu.size(1) != 3 || tu.scalar_type() != at::kFloat)
      throw ArgError("folding_hinge needs a float32 (B, 3, w, h, d) displacement");
    if (tu.size(2) < 2 || tu.size(3) < 2 || tu.size(4) < 2) throw ArgError("folding_hinge needs ≥ 2 voxels per axis");
    if (corners != 1 && corners != 8) throw ArgError("corners must be 1 or 8");
    const at::Tensor u = tu.contiguous();
    const int64_t batch = u.size(0), n[3] = {u.size(2), u.size(3), u.size(4)}, voxels = n[0] * n[1] * n[2];
    const int64_t step[3] = {n[1] * n[2], n[2], 1};
    at::Tensor grad = at::zeros_like(u);
    const float m = static_cast<float>(margin), weight = 1.0f / static_cast<float>(corners);
    std::vector<double> partial(n[0]);
    double total = 0;
    for (int64_t b = 0; b < batch; b++) {
      const float* up = u.data_ptr<float>() + b * 3 * voxels;
      float* gp = grad.data_ptr<float>() + b * 3 * voxels;
      for (int64_t parity = 0; parity < 2; parity++) {
        const int64_t cells = (n[0] - 1 - parity + 1) / 2;  // x = parity, parity + 2, … < n[0] − 1
        at::parallel_for(0, cells, 1, [&](int64_t begin, int64_t end) {
          for (int64_t c0 = begin; c0 < end; c0++) {
            const int64_t x = parity + 2 * c0;
            double sum = 0;
            for (int64_t y = 0; y + 1 < n[1]; y++)
              for (int64_t z = 0; z + 1 < n[2]; z++) {
                const int64_t cell = x * step[0] + y * step[1] + z;
                for (int64_t corner = 0; corner < corners; corner++) {
                  // The corner's offset within the cell; the edge along axis a runs from its a-face at 0 to 1.
                  const int64_t s[3] = {corner >> 2 & 1, corner >> 1 & 1, corner & 1};
                  int64_t from[3], to[3];
                  for (int a = 0; a < 3; a++) {
                    from[a] = to[a] = cell;
                    for (int e = 0; e < 3; e++)
                      if (e != a) from[a] += s[e] * step[e], to[a] += s[e] * step[e];
                    to[a] += step[a];
                  }
                  float J[3][3], C[3][3];
                  for (int c = 0; c < 3; c++)
                    for (int a = 0; a < 3; a++)
                      J[c][a] = up[c * voxels + to[a]] - up[c * voxels + from[a]] + (c == a ? 1.0f : 0.0f);
                  const float hinge = std::max(0.0f, m - cofactors(J, C));
                  if (hinge == 0) continue;
                  sum += weight * static_cast<double>(hinge) * hinge;
                  for (int c = 0; c < 3; c++)
                    for (int a = 0; a < 3; a++) {
                      const float g = -2 * weight * hinge * C[c][a];
                      gp[c * voxels + to[a]] += g;
                      gp[c * voxels + from[a]] -= g;
                    }
                }
              }
            partial[x] = sum;
          }
        });
      }
      for (int64_t x = 0; x + 1 < n[0]; x++) total += partial[x];
    }
    at::Tensor loss = at::scalar_tensor(total, at::kFloat);
    return wrap_all(info.Env(), {loss, grad});
  });
}

}  // namespace

void register_loss_ops(Napi::Env env, Exports e) {
  def<local_ncc>(env, e, "local_ncc");
  def<folding_hinge>(env, e, "folding_hinge");
}

}  // namespace dt
