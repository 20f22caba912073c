// Fused kernels of dense registration on descriptor lattices (ConvexAdam's stages): the SSD cost of
// every integer displacement in a cube, the coupled argmin over those candidates, and the warped SSD
// data term with its gradient with respect to the displacement. Written out with tensor ops they were
// dominated by temporaries (a (K, 3, N) difference per convex step, a grid_sample backward per Adam
// step); here each is one pass over the lattice.
#pragma GCC optimize("O3")
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "common.h"

namespace dt {
namespace {

using Info = const Napi::CallbackInfo&;

DT_CLONES float squared_distance(const float* __restrict a, const float* __restrict b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

void check_lattice(const at::Tensor& t, const char* name) {
  if (t.dim() != 4 || t.scalar_type() != at::kFloat)
    throw ArgError(std::string(name) + " must be a float32 (C, w, h, d) tensor");
}

// ssd_cost_volume(fixed (C, w, h, d), moving (C, w, h, d), r) → (w, h, d, K), K = (2r + 1)³:
// Σ_c (moving[c, clamp(p + d_k)] − fixed[c, p])², displacements d_k in C order over [−r, r]³ (moving
// replicated beyond its border).
at::Tensor ssd_cost_volume(Info info) {
  const at::Tensor &fixed = T(info[0]), &moving = T(info[1]);
  const int64_t r = I(info[2]);
  check_lattice(fixed, "fixed");
  check_lattice(moving, "moving");
  if (!fixed.sizes().equals(moving.sizes())) throw ArgError("fixed and moving must have the same shape");
  if (r < 0) throw ArgError("radius must be >= 0");
  const int64_t c = fixed.size(0), w = fixed.size(1), h = fixed.size(2), d = fixed.size(3), side = 2 * r + 1;
  const int64_t k = side * side * side;
  at::Tensor f = fixed.permute({1, 2, 3, 0}).contiguous(), m = moving.permute({1, 2, 3, 0}).contiguous();
  at::Tensor out = at::empty({w, h, d, k}, at::kFloat);
  const float *fp = f.data_ptr<float>(), *mp = m.data_ptr<float>();
  float* op = out.data_ptr<float>();
  auto clamp = [](int64_t v, int64_t n) { return v < 0 ? 0 : v >= n ? n - 1 : v; };
  at::parallel_for(0, w, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; x++)
      for (int64_t y = 0; y < h; y++)
        for (int64_t z = 0; z < d; z++) {
          const float* fv = fp + ((x * h + y) * d + z) * c;
          float* o = op + ((x * h + y) * d + z) * k;
          for (int64_t a = -r; a <= r; a++) {
            const int64_t xx = clamp(x + a, w);
            for (int64_t b = -r; b <= r; b++) {
              const int64_t yy = clamp(y + b, h);
              for (int64_t e = -r; e <= r; e++, o++)
                *o = squared_distance(mp + ((xx * h + yy) * d + clamp(z + e, d)) * c, fv, c);
            }
          }
        }
  });
  return out;
}

// coupled_argmin(cost (w, h, d, K), r, smoothed (3, w, h, d) | null, theta) → (3, w, h, d): per voxel the
// displacement d_k minimising cost_k + theta·‖d_k − smoothed‖² (the first such k), as float32.
at::Tensor coupled_argmin(Info info) {
  const at::Tensor& cost = T(info[0]);
  const int64_t r = I(info[1]);
  c10::optional<at::Tensor> smoothed = optT(info[2]);
  const float theta = static_cast<float>(D(info[3]));
  const int64_t side = 2 * r + 1, k = side * side * side;
  if (cost.dim() != 4 || cost.scalar_type() != at::kFloat || !cost.is_contiguous() || cost.size(3) != k)
    throw ArgError("cost must be a contiguous float32 (w, h, d, (2r + 1)³) tensor");
  const int64_t w = cost.size(0), h = cost.size(1), d = cost.size(2), n = w * h * d;
  at::Tensor s;
  if (smoothed) {
    s = smoothed->contiguous();
    if (s.dim() != 4 || s.scalar_type() != at::kFloat || s.size(0) != 3 || s.size(1) != w || s.size(2) != h ||
        s.size(3) != d)
      throw ArgError("smoothed must be a float32 (3, w, h, d) tensor on the cost's lattice");
  }
  at::Tensor out = at::empty({3, w, h, d}, at::kFloat);
  const float* cp = cost.data_ptr<float>();
  const float* sp = smoothed ? s.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; v++) {
      const float* c = cp + v * k;
      const float s0 = sp ? sp[v] : 0, s1 = sp ? sp[n + v] : 0, s2 = sp ? sp[2 * n + v] : 0;
      float best = std::numeric_limits<float>::infinity();
      int64_t at = 0, j = 0;
      for (int64_t a = -r; a <= r; a++)
        for (int64_t b = -r; b <= r; b++)
          for (int64_t e = -r; e <= r; e++, j++) {
            float value = c[j];
            if (sp) value += theta * ((a - s0) * (a - s0) + (b - s1) * (b - s1) + (e - s2) * (e - s2));
            if (value < best) best = value, at = j;
          }
      op[v] = static_cast<float>(at / (side * side) - r);
      op[n + v] = static_cast<float>((at / side) % side - r);
      op[2 * n + v] = static_cast<float>(at % side - r);
    }
  });
  return out;
}

// Trilinear taps of a position p (in voxels of a volume) along one axis, border-clamped as
// grid_sample(border): the base index, the weight of the next voxel, and whether p was inside (the
// derivative is 0 if not).
struct AxisTap {
  int64_t i0;
  float t;
  float inside;
};

inline AxisTap axis_tap(float p, int64_t n) {
  float inside = 1;
  if (!(p > 0)) p = 0, inside = 0;  // NaN → 0 as well, as PyTorch's clip
  if (p > n - 1) p = static_cast<float>(n - 1), inside = 0;
  const int64_t i0 = static_cast<int64_t>(std::floor(p));
  return {i0, p - static_cast<float>(i0), inside};
}

// Visits the 8 corners of the cell holding position p of a volume of `size`: (flat corner index, weight,
// the weight's derivative along each axis). Corners past the last voxel (weight 0) are skipped.
template <typename F>
inline void for_corners(const float p[3], const int64_t size[3], AxisTap tap[3], F body) {
  for (int a = 0; a < 3; a++) tap[a] = axis_tap(p[a], size[a]);
  for (int corner = 0; corner < 8; corner++) {
    int64_t idx[3];
    float wt[3], dw[3];
    bool inside = true;
    for (int a = 0; a < 3; a++) {
      const int bit = (corner >> (2 - a)) & 1;
      idx[a] = tap[a].i0 + bit;
      inside = inside && idx[a] < size[a];
      wt[a] = bit ? tap[a].t : 1 - tap[a].t;
      dw[a] = bit ? 1.0f : -1.0f;
    }
    if (!inside) continue;
    const float d[3] = {dw[0] * wt[1] * wt[2], wt[0] * dw[1] * wt[2], wt[0] * wt[1] * dw[2]};
    body((idx[0] * size[1] + idx[1]) * size[2] + idx[2], wt[0] * wt[1] * wt[2], d);
  }
}

// Lattice voxel v displaced by u (3, n) in voxels: its position.
inline void displaced(int64_t v, const float* up, int64_t n, const int64_t size[3], float p[3]) {
  const int64_t at[3] = {v / (size[1] * size[2]), (v / size[2]) % size[1], v % size[2]};
  for (int a = 0; a < 3; a++) p[a] = static_cast<float>(at[a]) + up[a * n + v];
}

// warped_ssd(moving (C, w, h, d), fixed (C, w', h', d'), u (3, w', h', d'), offset [3] | null, stride [3] | null)
//   → [loss (), gradient (3, w', h', d')]: loss = mean over channels and fixed voxels of (moving(x(p)) −
// fixed(p))², x(p) = offset + stride·p + u(p) in moving voxels (without offset and stride, the fixed lattice
// is the moving one: x = p + u(p)), moving read trilinearly with border clamping — grid_sample(bilinear,
// border, align_corners false) — and its gradient with respect to u (zero along an axis where the position
// was clamped). A sub-lattice (stride 2) lets the affine stage take each step on an eighth of the voxels.
Napi::Value warped_ssd(Info info) {
  return guard(info, [&]() -> Napi::Value {
    const at::Tensor &moving = T(info[0]), &fixed = T(info[1]), &displacement = T(info[2]);
    check_lattice(moving, "moving");
    check_lattice(fixed, "fixed");
    const bool sub = !absent(info[3]);
    const std::vector<int64_t> offset = sub ? ints(info[3]) : std::vector<int64_t>{0, 0, 0};
    const std::vector<int64_t> stride = sub ? ints(info[4]) : std::vector<int64_t>{1, 1, 1};
    if (offset.size() != 3 || stride.size() != 3) throw ArgError("offset and stride need 3 values each");
    for (int a = 0; a < 3; a++)
      if (stride[a] < 1 || offset[a] < 0) throw ArgError("stride must be ≥ 1 and offset ≥ 0");
    if (fixed.size(0) != moving.size(0) || (!sub && !fixed.sizes().equals(moving.sizes())))
      throw ArgError("fixed and moving must have the same shape (the same channels on a sub-lattice)");
    const int64_t c = fixed.size(0), w = fixed.size(1), h = fixed.size(2), d = fixed.size(3), n = w * h * d;
    if (displacement.dim() != 4 || displacement.size(0) != 3 || displacement.size(1) != w ||
        displacement.size(2) != h || displacement.size(3) != d)
      throw ArgError("displacement must be (3, w, h, d) on the fixed descriptors' lattice");
    at::Tensor m = moving.permute({1, 2, 3, 0}).contiguous(), f = fixed.permute({1, 2, 3, 0}).contiguous();
    at::Tensor u = displacement.to(at::kFloat).contiguous();
    at::Tensor gradient = at::empty({3, w, h, d}, at::kFloat);
    const float *mp = m.data_ptr<float>(), *fp = f.data_ptr<float>(), *up = u.data_ptr<float>();
    float* gp = gradient.data_ptr<float>();
    const int64_t size[3] = {moving.size(1), moving.size(2), moving.size(3)};
    const int threads = at::get_num_threads();
    std::vector<double> partial(threads, 0.0);
    const double norm = 2.0 / static_cast<double>(c * n);
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      std::vector<float> value(c), dv[3] = {std::vector<float>(c), std::vector<float>(c), std::vector<float>(c)};
      double sum = 0;
      AxisTap tap[3];
      for (int64_t v = begin; v < end; v++) {
        std::fill(value.begin(), value.end(), 0.0f);
        for (auto& g : dv) std::fill(g.begin(), g.end(), 0.0f);
        const int64_t at[3] = {v / (h * d), (v / d) % h, v % d};
        float p[3];
        for (int a = 0; a < 3; a++) p[a] = static_cast<float>(offset[a] + stride[a] * at[a]) + up[a * n + v];
        for_corners(p, size, tap, [&](int64_t k, float weight, const float* dw) {
          const float* mv = mp + k * c;
          for (int64_t ch = 0; ch < c; ch++) {
            value[ch] += weight * mv[ch];
            dv[0][ch] += dw[0] * mv[ch];
            dv[1][ch] += dw[1] * mv[ch];
            dv[2][ch] += dw[2] * mv[ch];
          }
        });
        const float* fv = fp + v * c;
        float grad[3] = {0, 0, 0};
        for (int64_t ch = 0; ch < c; ch++) {
          const float residual = value[ch] - fv[ch];
          sum += static_cast<double>(residual) * residual;
          for (int a = 0; a < 3; a++) grad[a] += residual * dv[a][ch];
        }
        for (int a = 0; a < 3; a++) gp[a * n + v] = static_cast<float>(norm * grad[a] * tap[a].inside);
      }
      partial[at::get_thread_num()] += sum;
    });
    double total = 0;
    for (double p : partial) total += p;
    at::Tensor loss = at::scalar_tensor(total / static_cast<double>(c * n), at::kFloat);
    return wrap_all(info.Env(), {loss, gradient});
  });
}

void check_field(const at::Tensor& u, const char* name) {
  if (u.dim() != 4 || u.scalar_type() != at::kFloat || u.size(0) != 3)
    throw ArgError(std::string(name) + " must be a float32 (3, w, h, d) tensor");
}

// Runs body(begin, end, buffer) over [0, n) in parallel, each thread adding into a zeroed float buffer
// shaped like `like` — the adjoint of a sampling spreads onto corners that collide between threads —
// and returns the buffers' sum.
template <typename F>
at::Tensor per_thread_sum(const at::Tensor& like, int64_t n, F body) {
  std::vector<at::Tensor> spread(at::get_num_threads());
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    at::Tensor& mine = spread[at::get_thread_num()];
    if (!mine.defined()) mine = at::zeros_like(like);
    body(begin, end, mine.data_ptr<float>());
  });
  at::Tensor sum = at::zeros_like(like);
  for (const at::Tensor& t : spread)
    if (t.defined()) sum.add_(t);
  return sum;
}

void check_positions(const at::Tensor& positions) {
  if (positions.dim() != 4 || positions.scalar_type() != at::kFloat || positions.size(0) != 3)
    throw ArgError("positions must be a float32 (3, w', h', d') tensor");
}

// sample_trilinear(volume (C, w, h, d), positions (3, w', h', d') in voxels of the volume) → (C, w', h', d'):
// trilinear interpolation with border clamping, as grid_sample(bilinear, border, align_corners false).
at::Tensor sample_trilinear(Info info) {
  const at::Tensor &f = T(info[0]), x = T(info[1]).contiguous();
  check_lattice(f, "volume");
  check_positions(x);
  const int64_t c = f.size(0), size[3] = {f.size(1), f.size(2), f.size(3)};
  const int64_t points = x.size(1) * x.size(2) * x.size(3);
  at::Tensor out = at::empty({c, x.size(1), x.size(2), x.size(3)}, at::kFloat);
  // Channels last, so each corner is one contiguous row: no copy when the volume is stored so (a
  // descriptor level read on several lattices), one otherwise.
  at::Tensor last = f.permute({1, 2, 3, 0}).contiguous();
  const float *fp = last.data_ptr<float>(), *xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, points, 1024, [&](int64_t begin, int64_t end) {
    AxisTap tap[3];
    std::vector<float> acc(c);
    for (int64_t v = begin; v < end; v++) {
      const float p[3] = {xp[v], xp[points + v], xp[2 * points + v]};
      std::fill(acc.begin(), acc.end(), 0.0f);
      for_corners(p, size, tap, [&](int64_t k, float w, const float*) {
        const float* row = fp + k * c;
        for (int64_t a = 0; a < c; a++) acc[a] += w * row[a];
      });
      for (int64_t a = 0; a < c; a++) op[a * points + v] = acc[a];
    }
  });
  return out;
}

// sample_trilinear_backward(volume, positions, g) → [∂L/∂volume, ∂L/∂positions] for L with
// ∂L/∂sample_trilinear(volume, positions) = g: the interpolation's adjoint (g spread onto the corners)
// and its derivative along each axis (0 along an axis where the position was clamped).
Napi::Value sample_trilinear_backward(Info info) {
  return guard(info, [&]() -> Napi::Value {
    at::Tensor f = T(info[0]).contiguous(), x = T(info[1]).contiguous(), g = T(info[2]).contiguous();
    check_lattice(f, "volume");
    check_positions(x);
    const int64_t c = f.size(0), size[3] = {f.size(1), f.size(2), f.size(3)};
    const int64_t points = x.size(1) * x.size(2) * x.size(3);
    if (g.scalar_type() != at::kFloat || g.dim() != 4 || g.size(0) != c || g.numel() != c * points)
      throw ArgError("gradient must be a float32 (C, w', h', d') tensor of the samples' shape");
    at::Tensor grad_x = at::empty_like(x);
    const float *fp = f.data_ptr<float>(), *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* gx = grad_x.data_ptr<float>();
    const int64_t n = size[0] * size[1] * size[2];
    at::Tensor grad_f = per_thread_sum(f, points, [&](int64_t begin, int64_t end, float* gf) {
      AxisTap tap[3];
      for (int64_t v = begin; v < end; v++) {
        const float p[3] = {xp[v], xp[points + v], xp[2 * points + v]};
        float dp[3] = {0, 0, 0};
        for_corners(p, size, tap, [&](int64_t k, float w, const float* d) {
          for (int64_t a = 0; a < c; a++) {
            const float ga = gp[a * points + v], value = fp[a * n + k];
            gf[a * n + k] += w * ga;
            for (int b = 0; b < 3; b++) dp[b] += ga * d[b] * value;
          }
        });
        for (int b = 0; b < 3; b++) gx[b * points + v] = dp[b] * tap[b].inside;
      }
    });
    return wrap_all(info.Env(), {grad_f, grad_x});
  });
}


// self_compose(u (3, w, h, d) in voxels) → u + u∘(id + u): one squaring of scaling and squaring, u read
// at v + u(v) as sample_trilinear reads it (border clamping). Written as displaced positions, a
// channels-last copy, the sampling and an add, a squaring made four passes and three temporaries of the
// field; the Adam stage runs 6 squarings and their backward per iteration.
at::Tensor self_compose(Info info) {
  const at::Tensor u = T(info[0]).contiguous();
  check_field(u, "displacement");
  const int64_t size[3] = {u.size(1), u.size(2), u.size(3)}, n = size[0] * size[1] * size[2];
  at::Tensor out = at::empty_like(u);
  const float* up = u.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    AxisTap tap[3];
    for (int64_t v = begin; v < end; v++) {
      float p[3], acc[3] = {0, 0, 0};
      displaced(v, up, n, size, p);
      for_corners(p, size, tap, [&](int64_t k, float w, const float*) {
        for (int a = 0; a < 3; a++) acc[a] += w * up[a * n + k];
      });
      for (int a = 0; a < 3; a++) op[a * n + v] = up[a * n + v] + acc[a];
    }
  });
  return out;
}

// self_compose_backward(u, g) → ∂L/∂u for L with ∂L/∂self_compose(u) = g: g itself, g spread onto the
// corners each sample read (the adjoint), and g along the sampled field's derivative at v + u(v) (0
// along an axis where the position was clamped) — sample_trilinear_backward's two terms plus g, fused.
at::Tensor self_compose_backward(Info info) {
  const at::Tensor u = T(info[0]).contiguous(), g = T(info[1]).contiguous();
  check_field(u, "displacement");
  if (!g.sizes().equals(u.sizes()) || g.scalar_type() != at::kFloat)
    throw ArgError("gradient must be a float32 tensor of the displacement's shape");
  const int64_t size[3] = {u.size(1), u.size(2), u.size(3)}, n = size[0] * size[1] * size[2];
  const float *up = u.data_ptr<float>(), *gp = g.data_ptr<float>();
  at::Tensor out = at::empty_like(u);
  float* op = out.data_ptr<float>();
  at::Tensor spread = per_thread_sum(u, n, [&](int64_t begin, int64_t end, float* sp) {
    AxisTap tap[3];
    for (int64_t v = begin; v < end; v++) {
      float p[3], dp[3] = {0, 0, 0};
      const float gv[3] = {gp[v], gp[n + v], gp[2 * n + v]};
      displaced(v, up, n, size, p);
      for_corners(p, size, tap, [&](int64_t k, float w, const float* d) {
        for (int a = 0; a < 3; a++) {
          const float value = up[a * n + k];
          sp[a * n + k] += w * gv[a];
          for (int b = 0; b < 3; b++) dp[b] += gv[a] * d[b] * value;
        }
      });
      for (int b = 0; b < 3; b++) op[b * n + v] = gv[b] + dp[b] * tap[b].inside;
    }
  });
  return out.add_(spread);
}

}  // namespace

void register_registration_ops(Napi::Env env, Exports e) {
  def<tensor_op<ssd_cost_volume>>(env, e, "ssd_cost_volume");
  def<tensor_op<coupled_argmin>>(env, e, "coupled_argmin");
  def<warped_ssd>(env, e, "warped_ssd");
  def<tensor_op<sample_trilinear>>(env, e, "sample_trilinear");
  def<sample_trilinear_backward>(env, e, "sample_trilinear_backward");
  def<tensor_op<self_compose>>(env, e, "self_compose");
  def<tensor_op<self_compose_backward>>(env, e, "self_compose_backward");
}

}  // namespace dt
