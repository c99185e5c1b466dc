// What the C++ time loops of native.cpp and native_ln.cpp share: the pointwise loops' build
// attributes and their sigmoid (and tanh(a) = 2 sigmoid(2a) - 1), one definition for both.

#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// The pointwise loops, compiled once per x86-64 level and dispatched by the loader (ifunc).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11  // x86-64-v4 names
#define RNNKIT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RNNKIT_CLONES
#endif
// What the clones call must be inlined into each, so that it is compiled for its level too.
#if defined(__GNUC__)
#define RNNKIT_INLINE inline __attribute__((always_inline))
#else
#define RNNKIT_INLINE inline
#endif

namespace {

// e^y = 2^n p(r) (y already clamped): n back, p(r) returned; T float or a vector of floats
// (native_tile.h's vsigmoid), the same steps lane by lane.
template <typename T>
RNNKIT_INLINE T exp_parts(T y, T& n) {
  n = (y * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const T r = y - n * 0.693359375f + n * 2.12194440e-4f;
  T p = T{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.f;
}

// sigmoid(x) = 1 / (1 + e^{-x}). float: e^y = 2^n p(r), n = round(y log2 e) (by adding and
// subtracting 1.5 * 2^23), r = y - n ln 2 (ln 2 in two parts), p Cephes' expf polynomial; y
// clamped to [-87, 88] (sigmoid is 0 or 1 there to float precision), NaN stays NaN. Error
// about 1e-7; branch-free, so loops over it vectorise (built with -fno-trapping-math, which
// lets the compiler turn the clamps into vector selects).
RNNKIT_INLINE float sigmoid(float x) {
  float y = -x;
  y = y < -87.f ? -87.f : y;
  y = y > 88.f ? 88.f : y;
  float n;
  const float p = exp_parts(y, n);
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return 1.f / (1.f + p * scale);
}

RNNKIT_INLINE double sigmoid(double x) { return 1. / (1. + std::exp(-x)); }

// tanh(x) = 2 sigmoid(2x) - 1 (float: from the sigmoid above, vectorised; absolute error about
// 2e-7); double: std::tanh.
RNNKIT_INLINE float tanh_(float x) { return 2.f * sigmoid(2.f * x) - 1.f; }

RNNKIT_INLINE double tanh_(double x) { return std::tanh(x); }

constexpr int64_t kMinWork = 16384;  // elements per thread in a step's row work (measured
                                     // before the module was built with OpenMP: remeasure)

// Rows [0, n) of a (n, H) block: run f(b0, b1) over row ranges, split across threads once a
// range would hold kMinWork elements.
template <typename F>
void rows(int64_t n, int64_t H, const F& f) {
  const int64_t grain = std::max<int64_t>(1, kMinWork / std::max<int64_t>(H, 1));
  if (n <= grain) {
    f(0, n);
  } else {
    at::parallel_for(0, n, grain, f);
  }
}

}  // namespace
