// e^x in plain float arithmetic, for loops that GCC should vectorise (ATen 1.13's vectorised exp-based
// kernels are slow on these machines: its silu ran at a quarter of the speed of its sigmoid). Cody–Waite
// range reduction and the Cephes polynomial: within 2 ulp for x in [−87.3, 88.7]; x is clamped to that
// range, where 2^k at the top is infinite (e^x = inf) and at the bottom the smallest normal (e^x ≈ 1e−38).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace dt {

inline float exp_fast(float x) {
  const float a = std::min(std::max(x, -87.3f), 88.7f);
  const float k = (a * 1.44269504f + 12582912.f) - 12582912.f;  // round to nearest (|a·log2 e| < 2^22)
  const float r = (a - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;  // 2^k
  float two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  return (p * r * r + r + 1.f) * two_k;
}

}  // namespace dt
