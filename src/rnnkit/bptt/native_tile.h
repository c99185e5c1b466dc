// Small step products without a GEMM library: out += x W^T for the few rows of a recurrent
// step (native.cpp's loops call it where `tiled` says so). At B16 H128 an LSTM step's
// recurrent product is 1 M multiply-adds, about 10 us of one core's FMA units, and a library
// call around it costs a good part of that again (the call and its checks, a new output
// tensor, the row pass reading that output back). Here the product accumulates into the
// step's pre-activations in place:
//   out[b, n] += sum_k x[b, k] W[n, k]        x (rows, K), W (N, K) as torch.nn stores it
// one loop per tile of R rows and 4V columns, the R x 4 sums in vector registers over k, W
// packed once per call as Wp (N/4V, K, 4V): Wp[u][k][m] = W[4V u + m][k], so a tile's 4V
// weights for one k are consecutive. Two builds of the same template: V = 16, R = 6 for
// AVX-512 (24 accumulators of 32 registers: each W vector loaded serves 6 rows; the B64 H512
// LSTM's inference on an Intel Xeon went from 0.90x torch.nn at R = 4 to 0.97x; at R = 7 the
// registers spill), V = 8, R = 2 for AVX2 + FMA (8 of 16); the CPU
// picks at run time, and a CPU with neither (or N not a multiple of 4V) keeps the GEMM path.
// The sums run in another order than a GEMM library's, so results differ from it in the last
// bits (tests/core/test_native.py compares the paths and the Python reference).

#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "native_math.h"  // RNNKIT_INLINE, at::parallel_for

namespace {

// One product's operands: out (n rows, stride ldo) += x (n rows, stride ldx) W^T, W packed
// with the inner size K; tile u's four column blocks start at out + u us + g gs (g = 0..3):
// us = 4V, gs = V for a plain product, us = V, gs = H for an LSTM's gates [i, f, g, o] (the
// tile's blocks are the four gates of units [uV, uV + V)). With `cell`, the LSTM step is
// finished for those units too (lstm_units). With an input operand (`In`: x_t (n, I) and
// W_ih packed alike), the sums start from the bias instead of out and take x_t W_ih^T too:
//   out = b + x_t W_ih^T + x W^T        (the LSTM step without a sequence-wide projection)
struct Cell {
  const float* c_prev;  // c'_{t-1} (n, H)
  float* c;             // c'_t (n, H)
  float* h;             // h_t (n, H)
  int64_t H;
};
struct In {
  const float* x;  // x_t (n, K), stride ldx
  int64_t ldx;
  const float* wp;  // W_ih packed as W_hh (count, K, 4V)
  int64_t K;
  const float* bias;  // (N,), in out's column layout
};
struct TileJob {
  const float* x;
  int64_t ldx;
  float* out;
  int64_t ldo, n, K, us, gs;
  const Cell* cell;
  const In* in = nullptr;
};

// acc[r][g] += sum_k x[r, k] wp[k][g] over k < K (the product's inner loop).
template <int V, int R, typename vec>
RNNKIT_INLINE void tile_sums(vec (&acc)[R][4], const float* __restrict__ wp,
                             const float* __restrict__ x, int64_t ldx, int64_t K) {
  for (int64_t k = 0; k < K; ++k, wp += 4 * V) {
    const vec w0 = *(const vec*)wp, w1 = *(const vec*)(wp + V);
    const vec w2 = *(const vec*)(wp + 2 * V), w3 = *(const vec*)(wp + 3 * V);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float xr = x[r * ldx + k];
      acc[r][0] += xr * w0;
      acc[r][1] += xr * w1;
      acc[r][2] += xr * w2;
      acc[r][3] += xr * w3;
    }
  }
}

// Rows [0, R) of tile u: the R x 4 sums in registers, from out (or the bias and the input
// operand's product, with `in`: wi, xi its tile's W_ih and rows), then over W's k.
template <int V, int R>
RNNKIT_INLINE void tile(const float* __restrict__ wp, const float* __restrict__ x, int64_t ldx,
                        float* __restrict__ o, int64_t ldo, int64_t K, int64_t gs,
                        const In* in = nullptr, const float* wi = nullptr,
                        const float* xi = nullptr, const float* bias = nullptr) {
  typedef float vec __attribute__((vector_size(V * 4), aligned(4)));  // unaligned loads too
  vec acc[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) acc[r][g] = *(const vec*)((in ? bias : o + r * ldo) + g * gs);
  }
  if (in) tile_sums<V, R>(acc, wi, xi, in->ldx, in->K);
  tile_sums<V, R>(acc, wp, x, ldx, K);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) *(vec*)(o + r * ldo + g * gs) = acc[r][g];
  }
}

// Vectors of V floats (and ints) in GCC's vector extension; fu for unaligned loads.
template <int V>
struct Vec {
  typedef float f __attribute__((vector_size(V * 4)));
  typedef float fu __attribute__((vector_size(V * 4), aligned(4)));
  typedef int32_t i __attribute__((vector_size(V * 4)));
};

// native_math.h's sigmoid on a vector (the same steps, lane by lane).
template <int V>
RNNKIT_INLINE typename Vec<V>::f vsigmoid(typename Vec<V>::f x) {
  using vf = typename Vec<V>::f;
  using vi = typename Vec<V>::i;
  const vf lo = vf{} - 87.f, hi = vf{} + 88.f;
  vf y = -x;
  y = y < lo ? lo : y;
  y = y > hi ? hi : y;
  vf n;
  const vf p = exp_parts(y, n);
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  return 1.f / (1.f + p * (vf)bits);
}

// The LSTM step for units [j0, j0 + V) of rows [0, n), from their pre-activations z (the g rows
// doubled): [i, f, s_g, o] = sigmoid(z), g = 2 s_g - 1, and [i, f, g, o] back into z, then
//   c'_t = f c'_{t-1} + 2 i g,   h_t = 2 o sigmoid(c'_t) - o   (= o tanh(c_t), c' = 2c)
// (the true h and g: the backward reads them as they are, with no pass after the loop)
template <int V>
RNNKIT_INLINE void lstm_units(float* z, int64_t ldz, const Cell& cell, int64_t n, int64_t j0) {
  using vf = typename Vec<V>::f;
  using vfu = typename Vec<V>::fu;
  const int64_t H = cell.H;
  for (int64_t b = 0; b < n; ++b) {
    float* zr = z + b * ldz + j0;
    const vf i = vsigmoid<V>(*(const vfu*)zr), f = vsigmoid<V>(*(const vfu*)(zr + H));
    const vf s_g = vsigmoid<V>(*(const vfu*)(zr + 2 * H));
    const vf o = vsigmoid<V>(*(const vfu*)(zr + 3 * H));
    const vf g = 2.f * s_g - 1.f;
    *(vfu*)zr = i;
    *(vfu*)(zr + H) = f;
    *(vfu*)(zr + 2 * H) = g;
    *(vfu*)(zr + 3 * H) = o;
    const vf c = f * *(const vfu*)(cell.c_prev + b * H + j0) + 2.f * i * g;
    *(vfu*)(cell.c + b * H + j0) = c;
    *(vfu*)(cell.h + b * H + j0) = 2.f * o * vsigmoid<V>(c) - o;
  }
}

// Out of line, so that the tiles' register allocation is their own.
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"), noinline)) void lstm_units16(
    float* z, int64_t ldz, const Cell& cell, int64_t n, int64_t j0) {
  lstm_units<16>(z, ldz, cell, n, j0);
}
__attribute__((target("avx2,fma"), noinline)) void lstm_units8(float* z, int64_t ldz,
                                                               const Cell& cell, int64_t n,
                                                               int64_t j0) {
  lstm_units<8>(z, ldz, cell, n, j0);
}

// Rows [0, r) of tile u, 0 < r <= R: tile<V, r> (one register blocking per row count).
template <int V, int R>
RNNKIT_INLINE void tile_rows(int64_t r, const float* w, const float* x, int64_t ldx, float* o,
                             int64_t ldo, int64_t K, int64_t gs, const In* in, const float* wi,
                             const float* xi, const float* bias) {
  if constexpr (R > 1) {
    if (r < R) return tile_rows<V, R - 1>(r, w, x, ldx, o, ldo, K, gs, in, wi, xi, bias);
  }
  tile<V, R>(w, x, ldx, o, ldo, K, gs, in, wi, xi, bias);
}

// Tiles [u0, u1) of a job: the n rows in ceil(n / R) blocks of as even a size as they divide
// into (n = 8, R = 6: two blocks of 4, not 6 and 2; each block reads the tile's W once); then
// the LSTM step of the tile's units where the job has a cell.
template <int V, int R>
RNNKIT_INLINE void tiles(const float* wp, const TileJob& j, int64_t u0, int64_t u1) {
  const int64_t blocks = (j.n + R - 1) / R;
  const In* in = j.in;
  for (int64_t u = u0; u < u1; ++u) {
    const float* w = wp + u * j.K * 4 * V;
    const float* wi = in ? in->wp + u * in->K * 4 * V : nullptr;
    const float* bias = in ? in->bias + u * j.us : nullptr;
    float* o = j.out + u * j.us;
    for (int64_t k = 0, b = 0; k < blocks; ++k) {
      const int64_t r = (j.n - b) / (blocks - k);  // the rows left, shared by the blocks left
      const float* xi = in ? in->x + b * in->ldx : nullptr;
      tile_rows<V, R>(r, w, j.x + b * j.ldx, j.ldx, o + b * j.ldo, j.ldo, j.K, j.gs, in, wi, xi,
                      bias);
      b += r;
    }
    if (j.cell) {
      if constexpr (V == 16) {
        lstm_units16(j.out, j.ldo, *j.cell, j.n, u * V);
      } else {
        lstm_units8(j.out, j.ldo, *j.cell, j.n, u * V);
      }
    }
  }
}

__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) void tiles16(const float* wp,
                                                                            const TileJob& j,
                                                                            int64_t u0,
                                                                            int64_t u1) {
  tiles<16, 6>(wp, j, u0, u1);
}

__attribute__((target("avx2,fma"))) void tiles8(const float* wp, const TileJob& j, int64_t u0,
                                                 int64_t u1) {
  tiles<8, 2>(wp, j, u0, u1);
}

// The vector width the CPU runs (16, 8), or 0: no tiled products here.
inline int64_t tile_width() {
  static const int64_t v = __builtin_cpu_supports("avx512f")                                 ? 16
                           : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8
                                                                                              : 0;
  return v;
}

// n zeros, this thread's: the bias of a product without one (sums that start from zero)
inline const float* zeros(int64_t n) {
  thread_local std::vector<float> z;
  if (static_cast<int64_t>(z.size()) < n) z.assign(n, 0.f);
  return z.data();
}

bool tiles_on = true;  // switch for tests (native set_tiled)
// The shapes that take tiles, measured (docs/bptt.md (i)): at most this many rows, and a W of
// at most this many elements (native.py sets AMD's and Intel's, measured, by vendor);
// settable (set_tile_limits) to measure them again.
int64_t tile_max_rows = 16, tile_max_w = 1 << 18;
constexpr int64_t kTileMinWork = 1 << 19;  // multiply-adds per thread, at least

// Whether float products of `rows` rows with a W of N x K take the tiles.
inline bool tiled(int64_t rows, int64_t N, int64_t K) {
  const int64_t v = tile_width();
  return tiles_on && v && N % (4 * v) == 0 && rows <= tile_max_rows && N * K <= tile_max_w;
}

// Steps [0, steps) of a recurrence, step i the TileJob job(i, cell, in) on the tiles of wp
// (its Cell and In, where it has them, in the caller's cell and in: each thread's own), in
// one parallel region: each thread keeps the same tiles (the same columns of W) at every step,
// and after its tiles of step i (and after(i, u0, u1) on them) it waits at a spin barrier for
// the others, in place of at::parallel_for's fork and join per step (on an AMD EPYC with 2
// threads 0.16 us against 1.5). The barrier counts slots, not threads: at::parallel_for over
// `team` slots hands each thread a range of them (all of them to one thread where it runs
// inline), and a step is done when every slot has arrived, so it never waits on a thread that
// does not exist. Below kTileMinWork multiply-adds per thread (for `rows` rows, the most a
// step has), one slot: no region at all.
constexpr int kSpins = 1 << 14;  // pauses at the barrier (a few microseconds) before yielding
template <typename Job, typename After>
void run_tile_steps(const at::Tensor& wp, int64_t steps, int64_t rows, const Job& job,
                    const After& after) {
  if (steps <= 0) return;
  const int64_t v = tile_width(), count = wp.size(0), K = wp.size(1);
  Cell cell0;
  In in0;
  const TileJob first = job(0, cell0, in0);
  const int64_t work = std::max<int64_t>(rows * 4 * v * (K + (first.in ? first.in->K : 0)), 1);
  const int64_t grain = std::max<int64_t>(1, kTileMinWork / work);
  const int64_t team = std::min<int64_t>(at::get_num_threads(), (count + grain - 1) / grain);
  const float* w = wp.data_ptr<float>();
  std::atomic<int64_t> arrived{0};
  auto slots = [&](int64_t s0, int64_t s1) {
    const int64_t u0 = count * s0 / team, u1 = count * s1 / team;
    Cell cell;
    In in;
    for (int64_t i = 0; i < steps; ++i) {
      TileJob j = job(i, cell, in);
      j.K = K;
      if (u1 > u0) v == 16 ? tiles16(w, j, u0, u1) : tiles8(w, j, u0, u1);
      after(i, u0, u1);
      if (team == s1 - s0) continue;  // every slot here: nobody to wait for
      arrived.fetch_add(s1 - s0, std::memory_order_acq_rel);
      for (int spins = 0; arrived.load(std::memory_order_acquire) < (i + 1) * team; ++spins) {
        if (spins < kSpins) {
          __builtin_ia32_pause();
        } else {
          std::this_thread::yield();  // more threads than free cores: let the others run
        }
      }
    }
  };
  if (team <= 1) {
    slots(0, 1);
  } else {
    at::parallel_for(0, team, 1, slots);
  }
}

// Rows [r0, r1) of a batch: a row group's share of a step's running rows [0, b) is rows(b)
// rows from r0 (the batch is sorted by length, so the running rows are a prefix).
struct RowRange {
  int64_t r0, r1;
  int64_t rows(int64_t b) const { return std::clamp(b, r0, r1) - r0; }
};

// Row groups. The rows of a batch never meet in a recurrence, so each thread can run every
// step for its own rows, with no barrier per step and no h_t or dz_t passing between cores;
// but each thread then reads all of W at every step, so only where W is small: at most
// row_split_w elements (all of the step's weights), and at least row_split_rows rows a group
// on average. On an Intel Xeon (2 threads) the B16 H128 LSTM's loops ran no faster on 2
// threads than on 1 with the columns split (the barrier, and dz_t crossing cores each step).
// Settable (set_row_groups) to measure. native.cpp row_bounds cuts the rows.
int64_t row_split_w = 1 << 17, row_split_rows = 4;
inline int64_t row_groups(int64_t rows, int64_t w_elems) {
  if (w_elems > row_split_w || row_split_rows <= 0 || at::in_parallel_region()) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / row_split_rows));
}

// f(RowRange{r_g, r_{g+1}}, g) for each row group of bounds r_0 < r_1 < ... , in parallel.
template <typename F>
void for_row_groups(const std::vector<int64_t>& r, const F& f) {
  const int64_t groups = static_cast<int64_t>(r.size()) - 1;
  if (groups <= 1) return f(RowRange{r.front(), r.back()}, 0);
  at::parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) f(RowRange{r[g], r[g + 1]}, g);
  });
}

// A job (above) on the tiles of W packed as wp (count, K, 4V): one step of run_tile_steps,
// the tiles split across threads once each thread has kTileMinWork multiply-adds.
inline void run_tiles(const at::Tensor& wp, const TileJob& j) {
  run_tile_steps(wp, 1, j.n, [&](int64_t, Cell&, In&) { return j; },
                 [](int64_t, int64_t, int64_t) {});
}

// out (n, N) += x (n, K) W^T for a plain packed W (native.py: TILES).
inline void tiled_addmm(const at::Tensor& wp, const float* x, int64_t ldx, float* out,
                        int64_t ldo, int64_t n) {
  const int64_t v = tile_width();
  run_tiles(wp, TileJob{x, ldx, out, ldo, n, 0, 4 * v, v, nullptr});
}

// out (n, N) = b + x (n, K) W^T for a plain packed W: an input operand of inner size 0 makes
// the sums start from the bias (N,) rather than from out.
inline void tiled_product(const at::Tensor& wp, const float* x, int64_t ldx, const float* bias,
                          float* out, int64_t n) {
  const int64_t v = tile_width(), N = wp.size(0) * 4 * v;
  const In from_bias{x, 0, wp.data_ptr<float>(), 0, bias};
  run_tiles(wp, TileJob{x, ldx, out, N, n, 0, 4 * v, v, nullptr, &from_bias});
}

// The TileJob of an LSTM step without a projection (native.py: TILES_LSTM, W packed by gates;
// native.cpp's lstm_tiled_steps): z (n, 4H) += h_{t-1} W^T, then the step's cells and
// outputs (lstm_units), all in one pass. With `in`, z is not read: z = b + x_t W_ih^T +
// h_{t-1} W^T (no sequence-wide projection).
inline TileJob lstm_job(const float* h_prev, float* z, const Cell& cell, int64_t n, const In* in) {
  const int64_t H = cell.H;
  return TileJob{h_prev, H, z, 4 * H, n, 0, tile_width(), H, &cell, in};
}

// The same for a double loop: never called (double products never take the tiles).
template <typename S>
void tiled_addmm(const at::Tensor&, const S*, int64_t, S*, int64_t, int64_t) {
  TORCH_CHECK(false, "rnnkit: the tiled step products are float32 only");
}

}  // namespace
