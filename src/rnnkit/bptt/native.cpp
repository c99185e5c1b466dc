// The time loops of the RNN, LSTM and GRU kernels in C++ (CPU tensors only): each kernel's
// forward and backward loop over time, and the LSTM's one no-grad step (`lstm_cell`); the
// layer-normalised cells' loops are native_ln.cpp's, registered in this module.
//
// The same math as the Python loops in rnn.py, lstm.py and gru.py, which stay as the
// reference and the path for CUDA; native.py prepares the buffers and weights in Python, and
// only the loop over time runs here. What this saves is the interpreter: an eager op costs
// 1.2-1.8 us of dispatch on a small tensor (3-3.7 us for mm/addmm), and a Python step is 6-8
// of them. Here a step is its GEMM and one pass of plain loops per row for the pointwise work,
// which the compiler vectorises: the sigmoids too (float: exp from a degree-6 polynomial, as
// in Cephes' expf; double: std::exp), each loop compiled for AVX-512, AVX2 and baseline
// x86-64 and picked at load time. tests/core/test_native.py compares the two loops. At few
// rows and small weights the step products run on the loops' own tiles (native_tile.h; the
// LSTM forward's whole step there), tested by tests/core/test_tiles.py.
//
// Scaled coordinates. Where the Python loops apply tanh, the forwards here use
//     tanh(a) = 2 sigmoid(2a) - 1
// (one sigmoid for a whole gate row; torch's CPU tanh_ measured 3-10x its sigmoid_), and
// carry affine stand-ins of the states whose factors native.py folds into the weights once
// per call, so that no per-step op rescales:
//   RNN (tanh)  s = (h + 1) / 2 = sigmoid(z'), z' = 2z; with h_{t-1} = 2 s_{t-1} - 1,
//                 z'_t = [2 W_ih x_t + 2 b - 2 W_hh 1] + 4 W_hh s_{t-1}   (t = 0: 2 W_hh h_0)
//   LSTM        z = [i, f, s_g, o] with s_g = sigmoid(2 z_g) = (g + 1) / 2 (the g rows of
//               W_ih, b and W_hh doubled), c' = 2c so tanh(c) = 2 sigmoid(c') - 1, and h / 2
//               carried in out (W_hh doubled again for t >= 1):
//                 c'_t = f c'_{t-1} + 4 i s_g - 2 i      h_t / 2 = o sigmoid(c'_t) - o / 2
//               (with torch.nn's projection W_hr that is m_t / 2, and h_t / 2 = (m_t / 2) W_hr^T)
//   GRU         the n rows of W_ih, b_ih, W_hh, b_hh doubled (W', b'), q = (h + 1) / 2 carried:
//                 u = q_{t-1} (2 W')^T + (b' - W' 1)     (= [u_r, u_z, 2 u_n])
//                 s_n = sigmoid(2 a_n + r 2 u_n)         (= (n + 1) / 2)
//                 q_t = s_n + z (q_{t-1} - s_n)
// After a forward native.py maps back to the true values: h = 2s - 1, 2 (h / 2), 2q - 1,
// c = c' / 2, g = 2 s_g - 1, n = 2 s_n - 1. Two saved tensors stay scaled, read only by the
// backwards here: the LSTM's cells C (c'; `cscale` below) and the GRU's U (2 u_n). The
// backwards compute the gradients of the true pre-activations, as the Python ones do, and
// `lstm_cell` uses the true gates (with tanh(a) = 2 sigmoid(2a) - 1 inline).

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "native_math.h"  // RNNKIT_CLONES, RNNKIT_INLINE, sigmoid
#include "native_tile.h"  // small step products without a GEMM library

namespace {

using at::Tensor;
using Steps = std::vector<std::tuple<int64_t, int64_t, int64_t>>;  // (t, b_t, b_{t+1})

// How many of the steps (a prefix: sorted rows end longest last) run rows from r0 on.
int64_t steps_from(const Steps& steps, int64_t r0) {
  auto runs = [r0](const auto& s) { return std::get<1>(s) > r0; };
  return std::count_if(steps.begin(), steps.end(), runs);
}

// Row group bounds 0 = r_0 < r_1 < ... < r_g = B, g <= groups (native_tile.h row_groups), for
// steps whose rows run longest first (lengths sorted): each group's work about even, a row's
// work its steps and a group's kStepRows rows' worth for each step it runs (reading all of W).
// The least largest work a cut allows (binary search on it, groups filled greedily in order).
constexpr int64_t kStepRows = 2;
std::vector<int64_t> row_bounds(const Steps& steps, int64_t B, int64_t groups) {
  if (groups <= 1) return {0, B};
  std::vector<int64_t> len(B);  // each row's steps
  for (int64_t b = 0; b < B; ++b) len[b] = steps_from(steps, b);
  auto cut = [&](int64_t most) {  // bounds with each group's work at most `most`
    std::vector<int64_t> r{0};
    int64_t work = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t first = len[b] * (1 + kStepRows);  // row b opening a group
      if (b > r.back() && work + len[b] > most) {
        r.push_back(b);
        work = first;
      } else {
        work += b == r.back() ? first : len[b];
      }
    }
    r.push_back(B);
    return r;
  };
  int64_t lo = len[0] * (1 + kStepRows), hi = lo;  // the longest row alone; everything
  for (int64_t b = 1; b < B; ++b) hi += len[b];
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<int64_t>(cut(mid).size()) - 1 <= groups) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return cut(lo);
}


Tensor onednn_linear(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                                     c10::string_view, c10::List<std::optional<c10::Scalar>>,
                                     std::optional<c10::string_view>)>();
  return op.call(x, w, b, "none", c10::List<std::optional<c10::Scalar>>(), "");
}

Tensor mkl_linear(const Tensor& x, const Tensor& packed, const Tensor& w,
                  const std::optional<Tensor>& b, int64_t rows) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkl::_mkl_linear", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const Tensor&,
                                     const std::optional<Tensor>&, int64_t)>();
  return op.call(x, packed, w, b, rows);
}

// A weight ready for many products x W^T (gemm.StepWeight): (packed, W, lib, rows), W (N, K)
// as torch.nn stores it, `packed` W in the layout of `lib` for products of `rows` rows.
using StepW = std::tuple<Tensor, Tensor, int64_t, int64_t>;
// kTiles, kTilesLSTM: the loops' own tiles (native_tile.h), W packed plain or by LSTM gates
constexpr int64_t kATen = 0, kOneDNN = 1, kMKLPacked = 2, kTiles = 3, kTilesLSTM = 4;

bool on_aten(const StepW& w) { return std::get<2>(w) == kATen; }

// W packed for the loops' tiles (native_tile.h), or an undefined tensor: another library.
Tensor tiles_of(const StepW& w) { return std::get<2>(w) == kTiles ? std::get<0>(w) : Tensor(); }

// x W^T + b on the loops' tiles (W packed plain, wp (N/4V, K, 4V)), the sums starting from
// b (or zeros) in registers: the output is written once, never filled first.
Tensor product_on_tiles(const Tensor& x, const Tensor& wp, const std::optional<Tensor>& b) {
  const int64_t n = x.size(0), N = wp.size(0) * wp.size(2);
  const Tensor xs = x.stride(1) == 1 ? x : x.contiguous();
  const Tensor bias = b ? b->contiguous() : Tensor();
  Tensor out = at::empty({n, N}, x.options());
  tiled_product(wp, xs.data_ptr<float>(), xs.stride(0),
                b ? bias.data_ptr<float>() : zeros(N), out.data_ptr<float>(), n);
  return out;
}

// x W^T + b in a new tensor (the packed libraries have no out=). On MKL's packed GEMM, which
// packs for one row count and falls back to its plain GEMM for any other, a shorter x (a
// ragged batch's running rows), if it has 3/4 of them or more, is widened to all `rows` rows
// of its storage: the full packed product measured faster there (51 us against 68 for 24 of
// 32 rows at 32 x 256 x 1024; 11.0 against 11.6 for 12 of 16 at 16 x 128 x 512, but 9.2 for 8
// unpacked), and the caller reads only its own rows of the result (the other rows of x are
// finite: zeroed or earlier values).
Tensor product(const Tensor& x, const StepW& w, const std::optional<Tensor>& b = std::nullopt) {
  const auto& [packed, plain, lib, rows] = w;
  if (lib == kMKLPacked) {
    const int64_t end = x.storage_offset() + (rows - 1) * x.stride(0) + x.size(1);
    if (x.size(0) < rows && 4 * x.size(0) >= 3 * rows && x.stride(1) == 1 &&
        end * static_cast<int64_t>(x.element_size()) <= static_cast<int64_t>(x.storage().nbytes())) {
      return mkl_linear(x.as_strided({rows, x.size(1)}, x.strides()), packed, plain, b, rows);
    }
    return mkl_linear(x, packed, plain, b, rows);
  }
  if (lib == kOneDNN) return onednn_linear(x, packed, b);
  if (lib == kTiles && x.scalar_type() == at::kFloat) return product_on_tiles(x, packed, b);
  return at::linear(x, plain, b);
}

// out = x W^T into `out` (x's rows): in place on ATen, else copied from the packed product.
void product_into(Tensor out, const Tensor& x, const StepW& w) {
  if (on_aten(w)) {
    at::mm_out(out, x, std::get<1>(w).t());
  } else {
    out.copy_(product(x, w).narrow(0, 0, x.size(0)));
  }
}

// A forward step's recurrent product for pre-activations z: z += h_{t-1} W^T in place on
// ATen (an undefined tensor back), else h_{t-1} W^T in a new tensor that the caller's row pass
// adds to z. Step 0 multiplies h_0 by the plain `w_first` (one product: not worth packing).
Tensor recurrent(Tensor& z, const Tensor& h_prev, int64_t t, const Tensor& w_first,
                 const StepW& w_rest) {
  if (!t) {
    z.addmm_(h_prev, w_first.t());
  } else if (on_aten(w_rest)) {
    z.addmm_(h_prev, std::get<1>(w_rest).t());
  } else {
    return product(h_prev, w_rest);
  }
  return Tensor();
}

void check_contiguous(const char* fn, std::initializer_list<const Tensor*> buffers) {
  for (const Tensor* x : buffers) {
    TORCH_CHECK(x->is_contiguous(), fn, ": every buffer must be contiguous");
  }
}

template <typename S>
S* ptr(const Tensor& x) {
  return x.data_ptr<S>();
}


// A forward step's recurrent product, rows [0, b_t): z_t += x W^T into Zs[zi] (B, N), x the
// step before's rows Hs[t - 1] (B, K) (h_0 at t = 0), times recurrent dropout's mask m (into
// h_rec) when given. On the tiles (`wp`, t >= 1) in place, from pointers where no mask is
// (no tensor made); else `recurrent`: its new tensor back from a packed GEMM, or undefined.
template <typename S>
Tensor step_product(const Tensor& Zs, int64_t zi, const Tensor& Hs, int64_t t, int64_t bt,
                    const Tensor& h0, const Tensor& h_rec, const std::optional<Tensor>& rec,
                    const Tensor& w_first, const StepW& w_rest, const Tensor& wp) {
  const int64_t B = Zs.size(1), N = Zs.size(2), K = Hs.size(2);
  if (wp.defined() && t && !rec) {
    tiled_addmm(wp, ptr<S>(Hs) + (t - 1) * B * K, K, ptr<S>(Zs) + zi * B * N, N, bt);
    return Tensor();
  }
  Tensor z = Zs[zi].narrow(0, 0, bt);
  Tensor prev = t ? Hs[t - 1].narrow(0, 0, bt) : h0;
  if (rec) {
    Tensor into = h_rec.narrow(0, 0, bt);
    prev = at::mul_out(into, prev, rec->narrow(0, 0, bt));
  }
  if (wp.defined() && t) {
    tiled_addmm(wp, ptr<S>(prev), K, ptr<S>(z), N, bt);
    return Tensor();
  }
  return recurrent(z, prev, t, w_first, w_rest);
}

// One LSTM row, after its GEMM: z = sigmoid(z + y) = [i, f, s_g, o] (y = h_{t-1} W^T when
// the GEMM gave it apart, else null: z holds it already), then
//   c'_t = f c'_{t-1} + 4 i s_g - 2 i,   h_t / 2 = o sigmoid(c'_t) - o / 2
template <typename S>
RNNKIT_INLINE void lstm_row_impl(S* __restrict__ z, const S* __restrict__ y, const S* __restrict__ pc,
                          S* __restrict__ c, S* __restrict__ h, int64_t H) {
  if (y) {
    for (int64_t j = 0; j < 4 * H; ++j) z[j] = sigmoid(z[j] + y[j]);
  } else {
    for (int64_t j = 0; j < 4 * H; ++j) z[j] = sigmoid(z[j]);
  }
  const S* __restrict__ i = z;
  const S* __restrict__ f = z + H;
  const S* __restrict__ s_g = z + 2 * H;
  const S* __restrict__ o = z + 3 * H;
  // three loops, not one: fused, GCC's vector code for this one ran 2.7x slower (measured)
  for (int64_t j = 0; j < H; ++j) c[j] = f[j] * pc[j] + S(4) * i[j] * s_g[j] - S(2) * i[j];
  for (int64_t j = 0; j < H; ++j) h[j] = sigmoid(c[j]);
  for (int64_t j = 0; j < H; ++j) h[j] = o[j] * h[j] - S(0.5) * o[j];
}
RNNKIT_CLONES void lstm_row(float* z, const float* y, const float* pc, float* c, float* h,
                            int64_t H) {
  lstm_row_impl(z, y, pc, c, h, H);
}
void lstm_row(double* z, const double* y, const double* pc, double* c, double* h, int64_t H) {
  lstm_row_impl(z, y, pc, c, h, H);
}

// One GRU row, after its GEMM u = q_{t-1} W^T + b_u, in place over a = [a_r, a_z, a_n]:
//   [r, z] = sigmoid(a_rz + u_rz),  s_n = sigmoid(a_n + r u_n),  q_t = s_n + z (q_{t-1} - s_n)
template <typename S>
RNNKIT_INLINE void gru_row_impl(S* __restrict__ a, const S* __restrict__ u, const S* __restrict__ q,
                         S* __restrict__ h, int64_t H) {
  for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(a[j] + u[j]);
  const S* __restrict__ r = a;
  const S* __restrict__ z = a + H;
  S* __restrict__ n = a + 2 * H;
  const S* __restrict__ u_n = u + 2 * H;
  for (int64_t j = 0; j < H; ++j) n[j] = sigmoid(n[j] + r[j] * u_n[j]);  // s_n
  for (int64_t j = 0; j < H; ++j) h[j] = n[j] + z[j] * (q[j] - n[j]);
}
RNNKIT_CLONES void gru_row(float* a, const float* u, const float* q, float* h, int64_t H) {
  gru_row_impl(a, u, q, h, H);
}
void gru_row(double* a, const double* u, const double* q, double* h, int64_t H) {
  gru_row_impl(a, u, q, h, H);
}

// In place over n values: z = act(z + y) (y null: act(z)), act = sigmoid (the tanh RNN's
// s_t) or max(x, 0) (relu).
template <typename S>
RNNKIT_INLINE void rnn_act_impl(S* __restrict__ z, const S* __restrict__ y, int64_t n, bool relu) {
  if (y) {
    for (int64_t j = 0; j < n; ++j) z[j] += y[j];
  }
  if (relu) {
    for (int64_t j = 0; j < n; ++j) z[j] = z[j] > S(0) ? z[j] : S(0);
  } else {
    for (int64_t j = 0; j < n; ++j) z[j] = sigmoid(z[j]);
  }
}
RNNKIT_CLONES void rnn_act(float* z, const float* y, int64_t n, bool relu) {
  rnn_act_impl(z, y, n, relu);
}
void rnn_act(double* z, const double* y, int64_t n, bool relu) { rnn_act_impl(z, y, n, relu); }

// dz = dh D (the RNN backward's pointwise step), over n values.
template <typename S>
RNNKIT_INLINE void mul_impl(S* __restrict__ out, const S* __restrict__ a, const S* __restrict__ b,
                     int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = a[j] * b[j];
}
RNNKIT_CLONES void mul(float* out, const float* a, const float* b, int64_t n) {
  mul_impl(out, a, b, n);
}
void mul(double* out, const double* a, const double* b, int64_t n) { mul_impl(out, a, b, n); }

// out += a over n elements
template <typename S>
RNNKIT_INLINE void add_impl(S* __restrict__ out, const S* __restrict__ a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] += a[j];
}
RNNKIT_CLONES void add(float* out, const float* a, int64_t n) { add_impl(out, a, n); }

// dh = a + b and dz = dh d over n elements (the RNN backward's running rows: dh_t = dout_t +
// dz_{t+1} W_hh from a packed product, dz_t = dh_t D_t), one pass.
template <typename S>
RNNKIT_INLINE void add_mul_impl(S* __restrict__ dh, S* __restrict__ dz, const S* __restrict__ a,
                                const S* __restrict__ b, const S* __restrict__ d, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const S v = a[j] + b[j];
    dh[j] = v;
    dz[j] = v * d[j];
  }
}
RNNKIT_CLONES void add_mul(float* dh, float* dz, const float* a, const float* b, const float* d,
                           int64_t n) {
  add_mul_impl(dh, dz, a, b, d, n);
}
void add_mul(double* dh, double* dz, const double* a, const double* b, const double* d,
             int64_t n) {
  add_mul_impl(dh, dz, a, b, d, n);
}

// ---------------------------------------------------------------------------------------
// LSTM forward over the steps of one chunk of pre-activations Zc (T_c, B, 4H): for each step
//   z = sigmoid(z + h_{t-1} W^T)         (W = W'_hh for h_0, 2 W'_hh after: h/2 is carried)
//   c'_t = f c'_{t-1} + 4 i s_g - 2 i    (= 2 (f c_{t-1} + i g))
//   h_t / 2 = o sigmoid(c'_t) - o / 2    (= o tanh(c_t) / 2)
// out (T, B, P) receives h_t / 2 (the true h_t, and Zc the true g, where every step runs on
// the tiles: lstm_tiled_steps, W then W'_hh); C is (T, B, H), or two (B, H) buffers used in
// turn (ring, when nothing is saved); c_prev is c'_{-1} = 2 c_0. With a projection W_hr (P, H)
// the row pass writes m_t / 2 = o sigmoid(c'_t) - o / 2 into a (B, H) buffer m, and
//   h_t / 2 = (m_t / 2) W_hr^T                (the step's second product, into out[t])
// else P = H and the row pass writes h_t / 2 into out[t] itself.
// Regularisers (regularisers.py; each optional, in the kernel's row layout): recurrent
// dropout's mask m (B, P) multiplies h_{t-1} in the product, and zoneout's weights k_h
// (T, B, P), k_c (T, B, H) mix each new state with the last (linear, so the scaled
// coordinates mix alike), after the row pass has formed m_t from the unzoned c~_t:
//   c'_t = k_c c'_{t-1} + (1 - k_c) c~'_t      h_t / 2 = k_h h_{t-1} / 2 + (1 - k_h) h~_t / 2
struct Noise {
  std::optional<Tensor> rec, k_h, k_c;
};
// The step's input product on the tiles (native.py `_fused_input`): x (T, B, I), W_ih packed
// for them by gates, the bias (4H,); Zc is then filled by the steps (not read).
using FusedIn = std::tuple<Tensor, Tensor, Tensor>;

// The LSTM forward's steps, the whole step on the tiles (W_hh packed by gates as wp, and W_ih
// too with fused_in), in one parallel region (run_tile_steps), or in row groups (each thread
// every step of its rows, native_tile.h row_groups); rows [bn, bt) that end at step t go to
// h_n and c_n by the thread that wrote their units. The buffers as
// lstm_forward_impl's, P = H, but out receives the true h_t and Zc the true g (lstm_units).
struct TiledSteps {
  const Steps& steps;
  int64_t t0;
  float *Z, *out, *C, *h_n, *c_n;
  const float *h0, *c0;  // h_0 and c'_0 = 2 c_0 (B, H), read at t = 0
  bool ring;
  int64_t B, H;
};
void lstm_tiled_steps(const TiledSteps& s, const Tensor& wp,
                      const std::optional<FusedIn>& fused_in) {
  const int64_t B = s.B, H = s.H, BH = B * H, v = tile_width();
  const float *x = nullptr, *wpi = nullptr, *bias = nullptr;
  int64_t I = 0, Ki = 0;
  if (fused_in) {
    const auto& [xt, wi, b] = *fused_in;
    x = ptr<float>(xt), wpi = ptr<float>(wi), bias = ptr<float>(b);
    I = xt.size(2), Ki = wi.size(1);
  }
  auto slots = [&](int64_t t) {  // (C's slot of c'_t, of c'_{t-1})
    return std::pair(s.ring ? t % 2 : t, s.ring ? (t + 1) % 2 : t - 1);
  };
  const int64_t w_elems = wp.numel() + (fused_in ? std::get<1>(*fused_in).numel() : 0);
  auto group = [&](RowRange g, int64_t) {  // every step for rows [g.r0, g.r1)
    const int64_t r0H = g.r0 * H;
    auto job = [&](int64_t i, Cell& cell, In& in) {
      const auto& [t, bt, bn] = s.steps[i];
      const auto [tc, tp] = slots(t);
      cell = Cell{(t ? s.C + tp * BH : s.c0) + r0H, s.C + tc * BH + r0H, s.out + t * BH + r0H, H};
      if (x) in = In{x + (t * B + g.r0) * I, I, wpi, Ki, bias};
      const float* h_prev = (t ? s.out + (t - 1) * BH : s.h0) + r0H;
      float* z = s.Z + (t - s.t0) * 4 * BH + 4 * r0H;
      return lstm_job(h_prev, z, cell, g.rows(bt), x ? &in : nullptr);
    };
    auto ends = [&](int64_t i, int64_t u0, int64_t u1) {  // rows [bn, bt) end here
      const auto& [t, bt, bn] = s.steps[i];
      const int64_t tc = slots(t).first, j0 = u0 * v, len = (u1 - u0) * v * sizeof(float);
      for (int64_t b = g.r0 + g.rows(bn); b < g.r0 + g.rows(bt); ++b) {
        std::memcpy(s.h_n + b * H + j0, s.out + t * BH + b * H + j0, len);
        std::memcpy(s.c_n + b * H + j0, s.C + tc * BH + b * H + j0, len);
      }
    };
    run_tile_steps(wp, steps_from(s.steps, g.r0), g.rows(std::get<1>(s.steps.front())), job, ends);
  };
  for_row_groups(row_bounds(s.steps, B, row_groups(B, w_elems)), group);
}

template <typename S>
void lstm_forward_impl(const Steps& steps, const Tensor& Zc, const Tensor& h0,
                       const Tensor& c_prev, const Tensor& out, const Tensor& C, bool ring,
                       const Tensor& w_first, const StepW& w_rest,
                       const std::optional<StepW>& w_hr, Tensor& h_n, Tensor& c_n,
                       const Noise& noise, const std::optional<FusedIn>& fused_in) {
  const int64_t B = out.size(1), P = out.size(2), H = C.size(2), BH = B * H, G = 4 * H;
  const int64_t t0 = std::get<0>(steps.front());
  S* Zp = ptr<S>(Zc);
  S* outp = ptr<S>(out);
  S* Cp = ptr<S>(C);
  const S* c0p = ptr<S>(c_prev);
  Tensor m = w_hr ? at::zeros({B, H}, out.options()) : Tensor();  // finite rows past b_t
  // m h_{t-1} for the product (finite rows past b_t); h_0 / 2, zoneout's h_{-1} / 2
  Tensor h_rec = noise.rec ? at::zeros({B, P}, out.options()) : Tensor();
  Tensor h0_half = noise.k_h ? h0 * 0.5 : Tensor();
  const Tensor wp = tiles_of(w_rest);  // W_hh's step products on the tiles (t >= 1)
  const bool fused = std::get<2>(w_rest) == kTilesLSTM && !w_hr && !noise.rec && !noise.k_h &&
                     !noise.k_c;  // the whole step on the tiles, every step
  TORCH_CHECK(fused || !fused_in, "lstm_forward: the input product takes the tiles only with W_hh");
  if constexpr (std::is_same_v<S, float>) {
    if (fused) {  // every step on the tiles, in one parallel region
      const TiledSteps ts{steps, t0, Zp, outp, Cp, ptr<S>(h_n), ptr<S>(c_n), ptr<S>(h0), c0p,
                          ring,  B,  H};
      return lstm_tiled_steps(ts, std::get<0>(w_rest), fused_in);
    }
  }
  for (const auto& [t, bt, bn] : steps) {
    Tensor y = step_product<S>(Zc, t - t0, out, t, bt, h0, h_rec, noise.rec, w_first, w_rest, wp);
    const S* yt = y.defined() ? ptr<S>(y) : nullptr;
    const int64_t tc = ring ? t % 2 : t, tp = ring ? (t + 1) % 2 : t - 1;
    S* zt = Zp + (t - t0) * B * G;
    const S* pc = t ? Cp + tp * BH : c0p;
    S* ct = Cp + tc * BH;
    S* ht = w_hr ? ptr<S>(m) : outp + t * B * P;  // m_t / 2, or h_t / 2 (P = H)
    // All the step's pointwise work in one pass per row, rows split across threads.
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        lstm_row(zt + b * G, yt ? yt + b * G : nullptr, pc + b * H, ct + b * H, ht + b * H, H);
      }
    });
    if (w_hr) product_into(out[t].narrow(0, 0, bt), m.narrow(0, 0, bt), *w_hr);
    if (noise.k_c) {  // c'_t = k_c c'_{t-1} + (1 - k_c) c~'_t
      Tensor pc_t = t ? C[tp].narrow(0, 0, bt) : c_prev.narrow(0, 0, bt);
      C[tc].narrow(0, 0, bt).lerp_(pc_t, (*noise.k_c)[t].narrow(0, 0, bt));
    }
    if (noise.k_h) {  // h_t / 2 = k_h h_{t-1} / 2 + (1 - k_h) h~_t / 2
      Tensor ph = t ? out[t - 1].narrow(0, 0, bt) : h0_half.narrow(0, 0, bt);
      out[t].narrow(0, 0, bt).lerp_(ph, (*noise.k_h)[t].narrow(0, 0, bt));
    }
    if (bn < bt) {  // rows [bn, bt) end here
      h_n.narrow(0, bn, bt - bn).copy_(out[t].narrow(0, bn, bt - bn));
      c_n.narrow(0, bn, bt - bn).copy_(C[tc].narrow(0, bn, bt - bn));
    }
  }
}

void lstm_forward(const Steps& steps, const Tensor& Zc, const Tensor& h0, const Tensor& c_prev,
                  const Tensor& out, const Tensor& C, bool ring, const Tensor& w_first,
                  const StepW& w_rest, const std::optional<StepW>& w_hr, Tensor h_n,
                  Tensor c_n, const std::optional<Tensor>& rec, const std::optional<Tensor>& k_h,
                  const std::optional<Tensor>& k_c, const std::optional<FusedIn>& fused_in) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("lstm_forward", {&Zc, &h0, &c_prev, &out, &C, &h_n, &c_n});
  if (fused_in) {
    const auto& [x, wpi, bias] = *fused_in;
    check_contiguous("lstm_forward", {&x, &wpi, &bias});
  }
  const Noise noise{rec, k_h, k_c};
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "lstm_forward", [&] {
    lstm_forward_impl<scalar_t>(steps, Zc, h0, c_prev, out, C, ring, w_first, w_rest, w_hr,
                                h_n, c_n, noise, fused_in);
  });
}

// One LSTM row of the backward, dh holding on entry the row's dz_{t+1} W_hh (or dL/dh_n) when
// dout is given (dh_t = dout_t + dh, written back), else dm_t itself (a projection, or dh_t
// formed by the caller); with kZone, zoneout's weights k_h (on dm_t, no projection) and k_c,
// either null (the plain step is k = 0):
//   dm~_t = (1 - k_h) dm_t,   tanh c~_t = 2 s_c - 1
//   dc~_t = (1 - k_c) dc_t + dm~_t o (1 - tanh^2 c~_t)
//   dz = [dc~ g i (1 - i), dc~ c_{t-1} f (1 - f), dc~ i (1 - g^2), dm~ tanh(c~_t) o (1 - o)]
//   dc_{t-1} = k_c dc_t + f dc~_t       (c_{t-1} = cscale cprev: C holds c' = 2c, c0 is c)
template <bool kAddOut, bool kZone, typename S>
RNNKIT_INLINE void lstm_grad_row_impl(const S* __restrict__ dout, S* __restrict__ dh,
                                      const S* __restrict__ kh, const S* __restrict__ kc,
                                      const S* __restrict__ z, const S* __restrict__ sc,
                                      const S* __restrict__ cprev, S cscale,
                                      S* __restrict__ dz, S* __restrict__ dc, int64_t H,
                                      int64_t n) {
  for (int64_t j = 0; j < n; ++j) {  // units [0, n) of the row (gate stride H)
    const S i = z[j], f = z[H + j], g = z[2 * H + j], o = z[3 * H + j];
    const S tc = S(2) * sc[j] - S(1);
    S d_m = dh[j];
    if constexpr (kAddOut) dh[j] = d_m = dout[j] + d_m;
    S k = S(0);
    if constexpr (kZone) {
      if (kh) d_m *= S(1) - kh[j];
      if (kc) k = kc[j];
    }
    const S d_c = (S(1) - k) * dc[j] + d_m * (o - o * tc * tc);  // dc~_t
    dz[j] = d_c * (g * (i - i * i));
    dz[H + j] = d_c * (cscale * cprev[j] * (f - f * f));
    dz[2 * H + j] = d_c * (i - i * g * g);
    dz[3 * H + j] = d_m * (tc * (o - o * o));
    dc[j] = k * dc[j] + d_c * f;
  }
}
template <typename S>
RNNKIT_INLINE void lstm_grad_row_pick(const S* dout, S* dh, const S* kh, const S* kc,
                                      const S* z, const S* sc, const S* cprev, S cscale, S* dz,
                                      S* dc, int64_t H, int64_t n) {
  if (kh || kc) {  // three loops, so that the plain ones have no test in them
    lstm_grad_row_impl<false, true>(dout, dh, kh, kc, z, sc, cprev, cscale, dz, dc, H, n);
  } else if (dout) {
    lstm_grad_row_impl<true, false>(dout, dh, kh, kc, z, sc, cprev, cscale, dz, dc, H, n);
  } else {
    lstm_grad_row_impl<false, false>(dout, dh, kh, kc, z, sc, cprev, cscale, dz, dc, H, n);
  }
}
RNNKIT_CLONES void lstm_grad_row(const float* dout, float* dh, const float* kh, const float* kc,
                                 const float* z, const float* sc, const float* cprev,
                                 float cscale, float* dz, float* dc, int64_t H,
                                 int64_t n) {
  lstm_grad_row_pick(dout, dh, kh, kc, z, sc, cprev, cscale, dz, dc, H, n);
}
void lstm_grad_row(const double* dout, double* dh, const double* kh, const double* kc,
                   const double* z, const double* sc, const double* cprev, double cscale,
                   double* dz, double* dc, int64_t H, int64_t n) {
  lstm_grad_row_pick(dout, dh, kh, kc, z, sc, cprev, cscale, dz, dc, H, n);
}

// s_c = sigmoid(c~'_t) of one row's unzoned cells, c~'_t = 2 (f c_{t-1} + i g), from its gates
// z = [i, f, g, o] and c_{t-1} = cscale cprev (zoneout on c: C holds the zoned cells)
template <typename S>
RNNKIT_INLINE void unzoned_row_impl(const S* __restrict__ z, const S* __restrict__ cprev,
                                    S cscale, S* __restrict__ sc, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    sc[j] = sigmoid(S(2) * (z[H + j] * (cscale * cprev[j]) + z[j] * z[2 * H + j]));
  }
}
RNNKIT_CLONES void unzoned_row(const float* z, const float* cprev, float cscale, float* sc,
                               int64_t H) {
  unzoned_row_impl(z, cprev, cscale, sc, H);
}
void unzoned_row(const double* z, const double* cprev, double cscale, double* sc, int64_t H) {
  unzoned_row_impl(z, cprev, cscale, sc, H);
}

// ---------------------------------------------------------------------------------------
// LSTM backward, reverse time. The K factors of lstm.py (_factors) are formed in the loop from the
// saved gates and cells instead of being precomputed into (T, B, 4H) buffers:
//   dh_t = dout_t + dz_{t+1} W_hh             (rows still running at t+1)
//   dh_t = dout_t + dL/dh_n                   (rows [b_{t+1}, b_t), which end at t)
//   dm_t = dh_t W_hr                          (with a projection; else P = H and dm_t = dh_t)
//   tanh c_t = 2 s_c - 1                      (s_c = sigmoid(c'_t), one ATen call beforehand)
//   dc_t += dm_t o (1 - tanh^2 c_t)
//   dz_o = dm_t tanh(c_t) o (1 - o)           dz_i = dc_t g i (1 - i)
//   dz_f = dc_t c_{t-1} f (1 - f)             dz_g = dc_t i (1 - g^2)
//   dc_{t-1} = dc_t f
// dh is one (B, P) buffer, or with a projection (T, B, P), every dh_t kept for dW_hr; M (T, B, H)
// then receives m_t = o tanh(c_t), also for dW_hr (lstm.py forms dW_hr = DH^T M after the loop).
// With the regularisers of the forward (`Noise`): C holds the zoned cells and, with zoneout
// on c, each row's s_c = sigmoid(c~'_t) of its unzoned cells is formed here (s_c empty);
// dh (T, B, P) with zoneout on h (dh_{t+1} read at t), and
//   dh_t = dout_t + m (dz_{t+1} W_hh) + k_h,{t+1} dh_{t+1}     dh~_t = (1 - k_h) dh_t
//   dc~_t = (1 - k_c) dc_t + dm_t o (1 - tanh^2 c~_t)           dc_{t-1} = k_c dc_t + f dc~_t
// the gate gradients as above from dm_t (of dh~_t) and dc~_t.
// The plain LSTM backward (no regulariser, projection, probe or cells' own gradient) with
// dz_{t+1} W_hh on the tiles (W_hh^T packed plain as wp), in one parallel region
// (run_tile_steps): each thread forms the columns of dh_t its tiles cover (sums from zero),
// then those units' gradients (lstm_grad_row on units [j0, j0 + n): each unit's work is its
// own), so threads meet only after each step, where dz_t is whole for the next product; or,
// with row groups (native_tile.h row_groups), each thread all the units of its rows, every
// step, without meeting (db summed per group, then added). The buffers as
// lstm_backward_impl's, P = H.
struct TiledGrads {
  const Steps& steps;
  const float *Z, *s_c, *C, *c0, *dout, *dh_n;  // s_c: sigmoid(C), or null: formed here
  float *dZ, *dc, *dh, *db;  // db: sum_t dz_t (4H,), zeroed here, or null
  int64_t B, H;
};
void lstm_tiled_grads(const TiledGrads& s, const Tensor& wp) {
  const int64_t B = s.B, H = s.H, G = 4 * H, w = 4 * tile_width();
  const std::vector<int64_t> bounds = row_bounds(s.steps, B, row_groups(B, wp.numel()));
  const int64_t groups = static_cast<int64_t>(bounds.size()) - 1;
  std::vector<float> db_more(s.db ? (groups - 1) * G : 0, 0.f);  // groups past the first
  if (s.db) std::memset(s.db, 0, G * sizeof(float));
  auto group = [&](RowRange rg, int64_t gi) {  // every step for rows [rg.r0, rg.r1)
    float* db = s.db && gi ? db_more.data() + (gi - 1) * G : s.db;
    const int64_t n = steps_from(s.steps, rg.r0);  // steps [0, n) run these rows
    auto job = [&](int64_t i, Cell&, In& in) {  // reverse time
      const auto& [t, bt, bn] = s.steps[n - 1 - i];
      const float* zero = zeros(H);
      in = In{zero, 0, zero, 0, zero};  // inner size 0: the sums start from zeros
      const float* dz = s.dZ + ((t + 1) * B + rg.r0) * G;
      return TileJob{dz, G, s.dh + rg.r0 * H, H, rg.rows(bn), 0, w, w / 4, nullptr, &in};
    };
    auto grads = [&](int64_t i, int64_t u0, int64_t u1) {  // units [u0 w, u1 w) of the rows
      const auto& [t, bt, bn] = s.steps[n - 1 - i];
      const int64_t j0 = u0 * w, len = (u1 - u0) * w;
      thread_local std::vector<float> sc;  // this row's sigmoid(c'_t), where s_c is null
      sc.resize(len);
      for (int64_t b = rg.r0; b < rg.r0 + rg.rows(bt); ++b) {
        const int64_t r = t * B + b;
        float* dh = s.dh + b * H + j0;
        if (b >= bn) std::memcpy(dh, s.dh_n + b * H + j0, len * sizeof(float));  // ends at t
        const float* cprev = (t ? s.C + (r - B) * H : s.c0 + b * H) + j0;
        const float* scr = s.s_c ? s.s_c + r * H + j0 : sc.data();
        if (!s.s_c) {
          std::memcpy(sc.data(), s.C + r * H + j0, len * sizeof(float));
          rnn_act(sc.data(), nullptr, len, false);
        }
        lstm_grad_row(s.dout + r * H + j0, dh, nullptr, nullptr, s.Z + r * G + j0, scr, cprev,
                      t ? 0.5f : 1.f, s.dZ + r * G + j0, s.dc + b * H + j0, H, len);
        for (int64_t g = 0; db && g < 4; ++g) {  // these units of every gate
          add(db + g * H + j0, s.dZ + r * G + g * H + j0, len);
        }
      }
    };
    run_tile_steps(wp, n, rg.rows(std::get<2>(s.steps.front())), job, grads);
  };
  for_row_groups(bounds, group);
  for (int64_t gi = 1; s.db && gi < groups; ++gi) add(s.db, db_more.data() + (gi - 1) * G, G);
}

template <typename S>
void lstm_backward_impl(const Steps& steps, const Tensor& Z, const Tensor& s_c, const Tensor& C,
                        const Tensor& c0, const Tensor& dout, const Tensor& dh_n, Tensor& dZ,
                        Tensor& dc, Tensor& dh, const StepW& w_hh_t,
                        const std::optional<Tensor>& norms, const std::optional<StepW>& w_hr_t,
                        const std::optional<Tensor>& M, const Noise& noise,
                        const std::optional<Tensor>& dC, const std::optional<Tensor>& db) {
  const int64_t B = Z.size(1), H = dc.size(1), P = dh_n.size(1), G = 4 * H;
  const bool proj = w_hr_t.has_value(), kept = dh.dim() == 3;
  const S* rmp = noise.rec ? ptr<S>(*noise.rec) : nullptr;
  const S* khp = noise.k_h ? ptr<S>(*noise.k_h) : nullptr;
  const S* kcp = noise.k_c ? ptr<S>(*noise.k_c) : nullptr;
  Tensor dh_tilde = proj && khp ? at::empty({B, P}, Z.options()) : Tensor();
  const Tensor wp = tiles_of(w_hh_t);  // dz_{t+1} W_hh on the tiles
  const bool plain = !rmp && !khp && !kcp;
  const bool tiled = std::is_same_v<S, float> && wp.defined() && plain && !proj && !kept &&
                     !norms && !dC;  // lstm_tiled_grads
  // s_c = sigmoid(c'_t): given, or formed row by row (zoneout on c; the tiled steps), or here
  const Tensor sc = s_c.numel() || kcp || tiled ? s_c : at::sigmoid(C);
  const S* Zp = ptr<S>(Z);
  const S* scp = sc.numel() ? ptr<S>(sc) : nullptr;
  const S* Cp = ptr<S>(C);
  const S* c0p = ptr<S>(c0);
  const S* dop = ptr<S>(dout);
  const S* dhnp = ptr<S>(dh_n);
  S* dZp = ptr<S>(dZ);
  S* dcp = ptr<S>(dc);
  S* Mp = M ? ptr<S>(*M) : nullptr;
  Tensor dm = proj ? at::empty({B, H}, Z.options()) : Tensor();
  if constexpr (std::is_same_v<S, float>) {
    if (tiled) {
      float* dbp = db ? ptr<S>(*db) : nullptr;
      const TiledGrads tg{steps, Zp, scp, Cp, c0p, dop, dhnp, dZp, dcp, ptr<S>(dh), dbp, B, H};
      return lstm_tiled_grads(tg, wp);
    }
  }
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    S* dhp = kept ? ptr<S>(dh) + t * B * P : ptr<S>(dh);  // dh_t
    if (dC) dc.narrow(0, 0, bt).add_((*dC)[t].narrow(0, 0, bt));  // the cells' own gradient
    Tensor rec;  // dz_{t+1} W_hh for rows [0, bn): in dh_t (ATen, tiles) or a new tensor
    const S* recp = dhp;
    if (bn && wp.defined()) {
      std::memset(dhp, 0, bn * P * sizeof(S));
      tiled_addmm(wp, dZp + (t + 1) * B * G, G, dhp, P, bn);
    } else if (bn) {
      Tensor dz1 = dZ[t + 1].narrow(0, 0, bn);
      Tensor dh_t = kept ? dh[t] : dh;
      if (on_aten(w_hh_t)) {
        rec = dh_t.narrow(0, 0, bn);
        at::mm_out(rec, dz1, std::get<1>(w_hh_t).t());
      } else {
        rec = product(dz1, w_hh_t);
      }
      recp = ptr<S>(rec);
    }
    auto grad_in = [&](int64_t b) {  // row b of dh_t
      S* dhr = dhp + b * P;
      const S* dor = dop + (t * B + b) * P;
      const S* add = b < bn ? recp + b * P : dhnp + b * P;
      if (b < bn && (rmp || khp)) {  // m (dz_{t+1} W_hh) + k_h,{t+1} dh_{t+1}
        const S* rm = rmp ? rmp + b * P : nullptr;
        const S* k1 = khp ? khp + ((t + 1) * B + b) * P : nullptr;
        const S* dh1 = khp ? dhr + B * P : nullptr;  // dh[t + 1], row b
        for (int64_t j = 0; j < P; ++j) {
          dhr[j] = dor[j] + (rm ? add[j] * rm[j] : add[j]) + (k1 ? k1[j] * dh1[j] : S(0));
        }
      } else {
        for (int64_t j = 0; j < P; ++j) dhr[j] = dor[j] + add[j];
      }
    };
    S* dmp = dhp;  // dm_t: dh_t itself (formed row by row in the pass below), or
    if (proj) {    // dh_t first, then dm_t = dh~_t W_hr
      rows(bt, P, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) grad_in(b);
      });
      Tensor dht = (kept ? dh[t] : dh).narrow(0, 0, bt);
      if (khp) {  // dh~_t = (1 - k_h) dh_t
        Tensor into = dh_tilde.narrow(0, 0, bt);
        dht = at::mul_out(into, dht, 1 - (*noise.k_h)[t].narrow(0, 0, bt));
      }
      product_into(dm.narrow(0, 0, bt), dht, *w_hr_t);
      dmp = ptr<S>(dm);
    }
    // zoneout on h without a projection: dm_t = dh~_t = (1 - k_h) dh_t, row by row below
    const S* khm = khp && !proj ? khp + t * B * P : nullptr;
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      std::vector<S> unzoned(kcp ? H : 0);  // s_c of the row's unzoned cells
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;  // row of (T, B, .) tensors
        const S* z = Zp + r * G;
        const S* sc = kcp ? unzoned.data() : scp + r * H;
        S* dmr = dmp + b * H;    // dm_t, or for the plain rows dh_t's sum so far
        const S* dor = nullptr;  // dout_t's row, where lstm_grad_row adds it
        if (!proj && !plain) {
          grad_in(b);
        } else if (!proj) {  // dh_t = dout_t + (dz_{t+1} W_hh or dL/dh_n), the latter in dh
          const S* add = b < bn ? recp + b * P : dhnp + b * P;
          if (add != dmr) std::memcpy(dmr, add, P * sizeof(S));
          dor = dop + r * P;
        }
        const S* kh = khm ? khm + b * H : nullptr;
        const S* kc = kcp ? kcp + r * H : nullptr;
        const S* cprev = t ? Cp + (r - B) * H : c0p + b * H;
        const S cscale = t ? S(0.5) : S(1);  // C holds c' = 2c; c0 is c
        if (kc) unzoned_row(z, cprev, cscale, unzoned.data(), H);
        lstm_grad_row(dor, dmr, kh, kc, z, sc, cprev, cscale, dZp + r * G, dcp + b * H, H, H);
        if (Mp) {  // m_t = o tanh(c_t)
          S* mr = Mp + r * H;
          for (int64_t j = 0; j < H; ++j) mr[j] = z[3 * H + j] * (S(2) * sc[j] - S(1));
        }
      }
    });
    if (norms) {
      Tensor n = (*norms)[t];
      at::linalg_vector_norm_out(n, (kept ? dh[t] : dh).narrow(0, 0, bt), 2);
    }
  }
  if (db) {  // (the tiled steps sum it in their loop)
    Tensor out = *db;
    at::sum_out(out, dZ, {0, 1});
  }
}

void lstm_backward(const Steps& steps, const Tensor& Z, const Tensor& s_c, const Tensor& C,
                   const Tensor& c0, const Tensor& dout, const Tensor& dh_n, Tensor dZ, Tensor dc,
                   Tensor dh, const StepW& w_hh_t, const std::optional<Tensor>& norms,
                   const std::optional<StepW>& w_hr_t, const std::optional<Tensor>& M,
                   const std::optional<Tensor>& rec, const std::optional<Tensor>& k_h,
                   const std::optional<Tensor>& k_c, const std::optional<Tensor>& dC,
                   const std::optional<Tensor>& db) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k_h, k_c};
  check_contiguous("lstm_backward", {&Z, &s_c, &C, &c0, &dout, &dh_n, &dZ, &dc, &dh});
  TORCH_CHECK(!db || (db->is_contiguous() && db->numel() == Z.size(2)),
              "lstm_backward: db must be a contiguous (4H,) tensor");
  TORCH_CHECK(w_hr_t.has_value() == M.has_value() && (!M || M->is_contiguous()),
              "lstm_backward: a projection needs W_hr and a contiguous M together");
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "lstm_backward", [&] {
    lstm_backward_impl<scalar_t>(steps, Z, s_c, C, c0, dout, dh_n, dZ, dc, dh, w_hh_t, norms,
                                 w_hr_t, M, noise, dC, db);
  });
}

// ---------------------------------------------------------------------------------------
// GRU forward, carrying q = (h + 1) / 2: for each step
//   u = q_{t-1} W^T + b_u                     (into U, or a new tensor from a packed GEMM,
//                                              copied into U when saved)
//   [r, z] = sigmoid(a_rz + u_rz)
//   s_n = sigmoid(a_n + r u_n)                (= (n + 1) / 2)
//   q_t = s_n + z (q_{t-1} - s_n)
// With recurrent dropout's mask m (B, H) the product reads m q_{t-1} and b_u is per row (B, 3H)
// (native.py folds m into it); with zoneout's k (T, B, H), q_t = k q_{t-1} + (1 - k) q~_t.
template <typename S>
void gru_forward_impl(const Steps& steps, const Tensor& Ac, const Tensor& U, const Tensor& out,
                      const Tensor& q0, const StepW& w, const std::optional<Tensor>& b_u,
                      bool save, Tensor& h_n, const Noise& noise) {
  const int64_t B = out.size(1), H = out.size(2), G = 3 * H;
  const int64_t t0 = std::get<0>(steps.front());
  S* Ap = ptr<S>(Ac);
  S* Up = ptr<S>(U);  // (T_c, B, 3H) when saved, else one (B, 3H) buffer
  S* outp = ptr<S>(out);
  const S* q0p = ptr<S>(q0);
  const bool rowwise = b_u && b_u->dim() == 2;  // b_u per row (recurrent dropout)
  Tensor q_rec = noise.rec ? at::zeros({B, H}, out.options()) : Tensor();  // finite past b_t
  const S* kp_all = noise.k_h ? ptr<S>(*noise.k_h) : nullptr;
  const Tensor wp = tiles_of(w);  // the step products on the tiles
  const Tensor bu = wp.defined() && b_u ? b_u->contiguous() : Tensor();
  for (const auto& [t, bt, bn] : steps) {
    const int64_t k = t - t0;
    S* keep = save ? Up + k * B * G : Up;
    const S* pp = t ? outp + (t - 1) * B * H : q0p;
    const bool fresh = !wp.defined() && !on_aten(w);  // u new, copied into U when saved
    const S* up = keep;  // rows of 3H
    Tensor u;
    if (wp.defined()) {  // u = b_u + (m) q_{t-1} W^T into U's rows, from pointers
      const S* x = pp;
      if (noise.rec) {
        S* into = ptr<S>(q_rec);
        mul(into, pp, ptr<S>(*noise.rec), bt * H);
        x = into;
      }
      for (int64_t b = 0; b < bt; ++b) {
        if (bu.defined()) {
          std::memcpy(keep + b * G, ptr<S>(bu) + (rowwise ? b * G : 0), G * sizeof(S));
        } else {
          std::memset(keep + b * G, 0, G * sizeof(S));
        }
      }
      tiled_addmm(wp, x, H, keep, G, bt);
    } else {
      Tensor prev = t ? out[t - 1].narrow(0, 0, bt) : q0;  // q_{t-1}
      if (noise.rec) {
        Tensor into = q_rec.narrow(0, 0, bt);
        prev = at::mul_out(into, prev, noise.rec->narrow(0, 0, bt));
      }
      if (fresh && rowwise) {
        u = product(prev, w);
        u.narrow(0, 0, bt).add_(b_u->narrow(0, 0, bt));
      } else if (fresh) {
        u = product(prev, w, b_u);
      } else {
        u = (save ? U[k] : U).narrow(0, 0, bt);
        if (b_u) {
          at::addmm_out(u, rowwise ? b_u->narrow(0, 0, bt) : *b_u, prev, std::get<1>(w).t());
        } else {
          at::mm_out(u, prev, std::get<1>(w).t());
        }
      }
      up = ptr<S>(u);
    }
    S* ap = Ap + k * B * G;
    S* hp = outp + t * B * H;
    S* kp = fresh && save ? keep : nullptr;
    // All the step's pointwise work in one pass per row, rows split across threads.
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (kp) std::memcpy(kp + b * G, up + b * G, G * sizeof(S));
        gru_row(ap + b * G, up + b * G, pp + b * H, hp + b * H, H);
        if (kp_all) {  // zoneout: q_t = q~_t + k (q_{t-1} - q~_t)
          const S* kz = kp_all + (t * B + b) * H;
          S* h = hp + b * H;
          const S* q = pp + b * H;
          for (int64_t j = 0; j < H; ++j) h[j] += kz[j] * (q[j] - h[j]);
        }
      }
    });
    if (bn < bt) {
      h_n.narrow(0, bn, bt - bn).copy_(out[t].narrow(0, bn, bt - bn));
    }
  }
}

void gru_forward(const Steps& steps, const Tensor& Ac, const Tensor& U, const Tensor& out,
                 const Tensor& q0, const StepW& w, const std::optional<Tensor>& b_u, bool save,
                 Tensor h_n, const std::optional<Tensor>& rec, const std::optional<Tensor>& k) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("gru_forward", {&Ac, &U, &out, &q0});
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(h_n.scalar_type(), "gru_forward", [&] {
    gru_forward_impl<scalar_t>(steps, Ac, U, out, q0, w, b_u, save, h_n, noise);
  });
}

// ---------------------------------------------------------------------------------------
// GRU backward, reverse time. The K factors of gru.py (_factors) are formed in the loop from
// the saved gates A = [r, z, n], U (whose n part is 2 u_n) and h_{t-1}:
//   dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh     (rows still running at t+1)
//   dh_t = dout_t + dL/dh_n                             (rows [b_{t+1}, b_t), ending at t)
//   K_n = (1 - z)(1 - n^2)
//   du_r = dh_t K_n u_n r (1 - r),  du_z = dh_t (h_{t-1} - n) z (1 - z),  du_n = dh_t K_n r
//   da_n = dh_t K_n                                     (the input side of n, into dA_n)
// With the forward's regularisers: dh_t gets m (du_{t+1} W_hh) and (k_{t+1} + (1 - k_{t+1})
// z_{t+1}) dh_{t+1}, and the gate gradients read dh~_t = (1 - k_t) dh_t (k: zoneout's weights).
template <typename S>
RNNKIT_INLINE void gru_grad_row_impl(const S* __restrict__ dh, const S* __restrict__ a,
                              const S* __restrict__ u2, const S* __restrict__ h_prev,
                              S* __restrict__ du, S* __restrict__ da_n, int64_t H,
                              const S* __restrict__ k) {
  for (int64_t j = 0; j < H; ++j) {
    const S r = a[j], z = a[H + j], n = a[2 * H + j], g = k ? dh[j] * (S(1) - k[j]) : dh[j];
    const S k_n = (S(1) - n * n) * (S(1) - z);
    du[j] = g * k_n * (S(0.5) * u2[2 * H + j]) * (r - r * r);
    du[H + j] = g * (h_prev[j] - n) * (z - z * z);
    du[2 * H + j] = g * k_n * r;
    da_n[j] = g * k_n;
  }
}
RNNKIT_CLONES void gru_grad_row(const float* dh, const float* a, const float* u2,
                                const float* h_prev, float* du, float* da_n, int64_t H,
                                const float* k) {
  if (k) {  // two calls, so that the plain one has no test in its loop
    gru_grad_row_impl(dh, a, u2, h_prev, du, da_n, H, k);
  } else {
    gru_grad_row_impl<float>(dh, a, u2, h_prev, du, da_n, H, nullptr);
  }
}
void gru_grad_row(const double* dh, const double* a, const double* u2, const double* h_prev,
                  double* du, double* da_n, int64_t H, const double* k) {
  gru_grad_row_impl(dh, a, u2, h_prev, du, da_n, H, k);
}

template <typename S>
void gru_backward_impl(const Steps& steps, const Tensor& A, const Tensor& U, const Tensor& out,
                       const Tensor& h0, const Tensor& dout, const Tensor& dh_n, Tensor& dU,
                       Tensor& DH, Tensor& dA_n, const StepW& w_hh_t, const Noise& noise) {
  const int64_t B = A.size(1), H = DH.size(2), G = 3 * H;
  const S* rmp = noise.rec ? ptr<S>(*noise.rec) : nullptr;
  const S* kp = noise.k_h ? ptr<S>(*noise.k_h) : nullptr;
  const S* Ap = ptr<S>(A);
  const S* Up = ptr<S>(U);
  const S* outp = ptr<S>(out);
  const S* h0p = ptr<S>(h0);
  const S* dop = ptr<S>(dout);
  const S* dhnp = ptr<S>(dh_n);
  S* dUp = ptr<S>(dU);
  S* DHp = ptr<S>(DH);
  S* dAnp = ptr<S>(dA_n);
  const Tensor wp = tiles_of(w_hh_t);  // the step products on the tiles
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    Tensor rec;  // du_{t+1} W_hh for rows [0, bn): in DH_t (ATen, tiles) or a new tensor
    const S* recp = DHp + t * B * H;
    if (bn && wp.defined()) {
      std::memset(DHp + t * B * H, 0, bn * H * sizeof(S));
      tiled_addmm(wp, dUp + (t + 1) * B * G, G, DHp + t * B * H, H, bn);
    } else if (bn) {
      Tensor du1 = dU[t + 1].narrow(0, 0, bn);
      if (on_aten(w_hh_t)) {
        rec = DH[t].narrow(0, 0, bn);
        at::mm_out(rec, du1, std::get<1>(w_hh_t).t());
      } else {
        rec = product(du1, w_hh_t);
      }
      recp = ptr<S>(rec);
    }
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;
        S* dh = DHp + r * H;
        const S* d = dop + r * H;
        if (b < bn) {
          const S* z1 = Ap + (r + B) * G + H;  // z_{t+1}
          const S* dh1 = DHp + (r + B) * H;
          const S* rc = recp + b * H;  // may be dh itself
          if (rmp || kp) {
            const S* rm = rmp ? rmp + b * H : nullptr;
            const S* k1 = kp ? kp + (r + B) * H : nullptr;
            for (int64_t j = 0; j < H; ++j) {
              const S zk = k1 ? k1[j] + (S(1) - k1[j]) * z1[j] : z1[j];
              dh[j] = (rm ? rc[j] * rm[j] : rc[j]) + d[j] + zk * dh1[j];
            }
          } else {
            for (int64_t j = 0; j < H; ++j) dh[j] = rc[j] + d[j] + z1[j] * dh1[j];
          }
        } else {
          const S* dhn = dhnp + b * H;
          for (int64_t j = 0; j < H; ++j) dh[j] = d[j] + dhn[j];
        }
        const S* h_prev = t ? outp + (r - B) * H : h0p + b * H;
        const S* k = kp ? kp + r * H : nullptr;
        gru_grad_row(dh, Ap + r * G, Up + r * G, h_prev, dUp + r * G, dAnp + r * H, H, k);
      }
    });
  }
}

void gru_backward(const Steps& steps, const Tensor& A, const Tensor& U, const Tensor& out,
                  const Tensor& h0, const Tensor& dout, const Tensor& dh_n, Tensor dU,
                  Tensor DH, Tensor dA_n, const StepW& w_hh_t, const std::optional<Tensor>& rec,
                  const std::optional<Tensor>& k) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("gru_backward", {&A, &U, &out, &h0, &dout, &dh_n, &dU, &DH, &dA_n});
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gru_backward", [&] {
    gru_backward_impl<scalar_t>(steps, A, U, out, h0, dout, dh_n, dU, DH, dA_n, w_hh_t, noise);
  });
}

// ---------------------------------------------------------------------------------------
// Elman RNN forward, in place over the projections Z (T, B, H) (scaled coordinates above):
//   tanh: z'_t += s_{t-1} W'^T; s_t = sigmoid(z'_t)    (s = (h + 1) / 2, W' = 4 W_hh)
//   relu: z_t += h_{t-1} W_hh^T; h_t = max(z_t, 0)
// With the regularisers (`Noise`): the product reads m s_{t-1} (native.py folds the tanh
// RNN's -W_hh m into Z), and zoneout mixes s_t = k s_{t-1} + (1 - k) s~_t after the act
// (s = (h + 1) / 2 is affine in h: the mix is the same).
template <typename S>
void rnn_forward_impl(const Steps& steps, Tensor& Z, const Tensor& h0, const Tensor& w_first,
                      const StepW& w_rest, bool relu, const Noise& noise) {
  const int64_t B = Z.size(1), H = Z.size(2);
  S* Zp = ptr<S>(Z);
  Tensor h_rec = noise.rec ? at::zeros({B, H}, Z.options()) : Tensor();  // finite past b_t
  Tensor s0 = noise.k_h ? (relu ? h0 : (h0 + 1) * 0.5) : Tensor();  // zoneout's s_{-1}
  const Tensor wp = tiles_of(w_rest);  // the step products on the tiles (t >= 1)
  for (const auto& [t, bt, bn] : steps) {
    Tensor y = step_product<S>(Z, t, Z, t, bt, h0, h_rec, noise.rec, w_first, w_rest, wp);
    S* zt = Zp + t * B * H;
    const S* yt = y.defined() ? ptr<S>(y) : nullptr;
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      rnn_act(zt + b0 * H, yt ? yt + b0 * H : nullptr, (b1 - b0) * H, relu);
    });
    if (noise.k_h) {  // s_t = k s_{t-1} + (1 - k) s~_t
      Tensor ps = t ? Z[t - 1].narrow(0, 0, bt) : s0.narrow(0, 0, bt);
      Z[t].narrow(0, 0, bt).lerp_(ps, (*noise.k_h)[t].narrow(0, 0, bt));
    }
  }
}

void rnn_forward(const Steps& steps, Tensor Z, const Tensor& h0, const Tensor& w_first,
                 const StepW& w_rest, bool relu, const std::optional<Tensor>& rec,
                 const std::optional<Tensor>& k) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("rnn_forward", {&Z});
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "rnn_forward", [&] {
    rnn_forward_impl<scalar_t>(steps, Z, h0, w_first, w_rest, relu, noise);
  });
}

// Elman RNN backward, reverse time, with D = act'(z) for all steps:
//   dh_t = dout_t + dz_{t+1} W_hh             (rows still running at t+1)
//   dh_t = dout_t + dL/dh_n                   (rows [b_{t+1}, b_t), which end at t)
//   dz_t = dh_t D_t
// With the regularisers: dh_t = dout_t + m (dz_{t+1} W_hh) + k_{t+1} dh_{t+1}, and D already
// holds (1 - k_t) act'(z~_t) (rnn_noise.py).
template <typename S>
void rnn_backward_impl(const Steps& steps, const Tensor& D, const Tensor& dout,
                       const Tensor& dh_n, Tensor& dZ, Tensor& dh, const StepW& w_hh_t,
                       const std::optional<Tensor>& norms, const Noise& noise) {
  const int64_t B = D.size(1), H = D.size(2);
  const S* Dp = ptr<S>(D);
  const S* dop = ptr<S>(dout);
  const S* dhnp = ptr<S>(dh_n);
  S* dZp = ptr<S>(dZ);
  S* dhp = ptr<S>(dh);
  const Tensor wp = tiles_of(w_hh_t);  // the step products on the tiles
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    const S* dot = dop + t * B * H;
    Tensor rec;  // dz_{t+1} W_hh from a packed product, added in the row pass below
    if (bn && wp.defined() && !noise.rec && !noise.k_h) {  // as below, from pointers
      std::memcpy(dhp, dot, bn * H * sizeof(S));
      tiled_addmm(wp, dZp + (t + 1) * B * H, H, dhp, H, bn);
    } else if (bn) {  // dh[:bn] = dout_t[:bn] + dz_{t+1}[:bn] W_hh
      Tensor d = dh.narrow(0, 0, bn);
      Tensor dz1 = dZ[t + 1].narrow(0, 0, bn);
      Tensor dot_rows = dout[t].narrow(0, 0, bn);
      if (noise.rec || noise.k_h) {  // d still holds dh_{t+1}'s rows [0, bn)
        Tensor keep = noise.k_h ? (*noise.k_h)[t + 1].narrow(0, 0, bn) * d : Tensor();
        Tensor prod = on_aten(w_hh_t) ? at::mm(dz1, std::get<1>(w_hh_t).t())
                                      : product(dz1, w_hh_t).narrow(0, 0, bn);
        if (noise.rec) prod = prod * noise.rec->narrow(0, 0, bn);
        at::add_out(d, dot_rows, prod);
        if (keep.defined()) d.add_(keep);
      } else if (on_aten(w_hh_t)) {
        at::addmm_out(d, dot_rows, dz1, std::get<1>(w_hh_t).t());
      } else {
        rec = product(dz1, w_hh_t);
      }
    }
    for (int64_t j = bn * H; j < bt * H; ++j) dhp[j] = dot[j] + dhnp[j];
    S* dzt = dZp + t * B * H;
    const S* Dt = Dp + t * B * H;
    const int64_t done = rec.defined() ? bn * H : 0;  // rows [0, bn): dh_t and dz_t together
    if (done) add_mul(dhp, dzt, dot, ptr<S>(rec), Dt, done);
    mul(dzt + done, dhp + done, Dt + done, bt * H - done);
    if (norms) {
      Tensor n = (*norms)[t];
      at::linalg_vector_norm_out(n, dh.narrow(0, 0, bt), 2);
    }
  }
}

void rnn_backward(const Steps& steps, const Tensor& D, const Tensor& dout, const Tensor& dh_n,
                  Tensor dZ, Tensor dh, const StepW& w_hh_t,
                  const std::optional<Tensor>& norms, const std::optional<Tensor>& rec,
                  const std::optional<Tensor>& k) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("rnn_backward", {&D, &dout, &dh_n, &dZ, &dh});
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(D.scalar_type(), "rnn_backward", [&] {
    rnn_backward_impl<scalar_t>(steps, D, dout, dh_n, dZ, dh, w_hh_t, norms, noise);
  });
}

// ---------------------------------------------------------------------------------------
// One LSTM step with the true gates (generation, streaming), x (B, I), h and c (B, H):
//   z = x W_ih^T + b_ih + h W_hh^T + b_hh                   (B, 4H; both products on oneDNN
//   i, f, o = sigmoid(z_i, z_f, z_o),  g = tanh(z_g)         or both on ATen)
//   c' = f c + i g,  h' = o tanh(c'),  tanh(a) = 2 sigmoid(2a) - 1
template <typename S>
RNNKIT_INLINE void lstm_cell_row_impl(S* __restrict__ z, const S* __restrict__ b,
                               const S* __restrict__ c, S* __restrict__ h_new,
                               S* __restrict__ c_new, int64_t H) {
  // z becomes [i, f, s_g, o], s_g = sigmoid(2 z_g) (g = 2 s_g - 1); short loops (see lstm_row);
  // b = b_hh, or null without one (the test is hoisted out of the loops)
  for (int64_t j = 0; j < 2 * H; ++j) z[j] = sigmoid(z[j] + (b ? b[j] : S(0)));
  for (int64_t j = 2 * H; j < 3 * H; ++j) z[j] = sigmoid(S(2) * (z[j] + (b ? b[j] : S(0))));
  for (int64_t j = 3 * H; j < 4 * H; ++j) z[j] = sigmoid(z[j] + (b ? b[j] : S(0)));
  const S* __restrict__ i = z;
  const S* __restrict__ f = z + H;
  const S* __restrict__ s_g = z + 2 * H;
  const S* __restrict__ o = z + 3 * H;
  for (int64_t j = 0; j < H; ++j) c_new[j] = f[j] * c[j] + i[j] * (S(2) * s_g[j] - S(1));
  for (int64_t j = 0; j < H; ++j) h_new[j] = sigmoid(S(2) * c_new[j]);
  for (int64_t j = 0; j < H; ++j) h_new[j] = o[j] * (S(2) * h_new[j] - S(1));
}
RNNKIT_CLONES void lstm_cell_row(float* z, const float* b, const float* c, float* h_new,
                                 float* c_new, int64_t H) {
  lstm_cell_row_impl(z, b, c, h_new, c_new, H);
}
void lstm_cell_row(double* z, const double* b, const double* c, double* h_new, double* c_new,
                   int64_t H) {
  lstm_cell_row_impl(z, b, c, h_new, c_new, H);
}

std::vector<Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c,
                              const Tensor& w_ih, const std::optional<Tensor>& w_hh,
                              const std::optional<Tensor>& b_ih,
                              const std::optional<Tensor>& b_hh, bool onednn) {
  // Without w_hh, x is [x, h] and w_ih [W_ih, W_hh] (fast_step.py): one product, W read once.
  at::AutoDispatchBelowADInplaceOrView guard;
  const int64_t B = c.size(0), H = c.size(1);
  Tensor z, b;
  if (onednn) {
    z = onednn_linear(x, w_ih, b_ih);
    if (w_hh) z.add_(onednn_linear(h, *w_hh, std::nullopt));
  } else {
    z = b_ih ? at::addmm(*b_ih, x, w_ih.t()) : at::mm(x, w_ih.t());
    if (w_hh) z.addmm_(h, w_hh->t());
  }
  b = b_hh ? b_hh->contiguous() : Tensor();
  Tensor cc = c.contiguous();
  check_contiguous("lstm_cell", {&z, &cc});
  Tensor h_new = at::empty({B, H}, c.options()), c_new = at::empty({B, H}, c.options());
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "lstm_cell", [&] {
    scalar_t* zp = ptr<scalar_t>(z);  // a new tensor: the gates go in place
    const scalar_t* bp = b.defined() ? ptr<scalar_t>(b) : nullptr;
    const scalar_t* cp = ptr<scalar_t>(cc);
    scalar_t* hn = ptr<scalar_t>(h_new);
    scalar_t* cn = ptr<scalar_t>(c_new);
    rows(B, H, [&](int64_t b0, int64_t b1) {
      for (int64_t r = b0; r < b1; ++r) {
        lstm_cell_row(zp + r * 4 * H, bp, cp + r * H, hn + r * H, cn + r * H, H);
      }
    });
  });
  return {h_new, c_new};
}

// Every layer of a unidirectional LSTM for one step (fast_step.py): x (B, I), h (L, B, P),
// c (L, B, H); layer k's gates from one product [x_k, h_k] w[k]^T + b[k], w[k] = [W_ih, W_hh]
// and b[k] = b_ih + b_hh, and its output m_k (m_k W_hr^T with w_hr[k]) the next layer's x_k;
// onednn[2k], onednn[2k + 1]: the library of the gates' and the projection's product.
// Returns (x_L, stack h'_k, stack c'_k).
std::vector<Tensor> lstm_steps(Tensor x, const Tensor& h, const Tensor& c,
                               const std::vector<Tensor>& w,
                               const std::vector<std::optional<Tensor>>& b,
                               const std::vector<std::optional<Tensor>>& w_hr,
                               const std::vector<bool>& onednn) {
  at::AutoDispatchBelowADInplaceOrView guard;
  std::vector<Tensor> hs, cs;
  for (size_t k = 0; k < w.size(); ++k) {
    const Tensor h_k = h[k];
    auto mc = lstm_cell(at::cat({x, h_k}, 1), h_k, c[k], w[k], std::nullopt, b[k],
                        std::nullopt, onednn[2 * k]);
    x = mc[0];
    if (w_hr[k]) {
      x = onednn[2 * k + 1] ? onednn_linear(x, *w_hr[k], std::nullopt) : at::mm(x, w_hr[k]->t());
    }
    hs.push_back(x);
    cs.push_back(mc[1]);
  }
  return {x, at::stack(hs), at::stack(cs)};
}

// sigmoid in place over a contiguous tensor: the loops' own sigmoid, bound for its test.
void sigmoid_(Tensor x) {
  check_contiguous("sigmoid_", {&x});
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sigmoid_",
                             [&] { rnn_act(ptr<scalar_t>(x), nullptr, x.numel(), false); });
}

// o[i] = b[i] >= t ? h : l without a branch (the draws are random: a branch mispredicts
// at rate min(p, 1 - p)), in vector registers: k = 0 or 1 from the comparison, then l + (h - l) k
// (exactly h or l where one of them is 0, as in every mask).
template <typename S>
RNNKIT_CLONES void mask16_rows(const int16_t* __restrict b, int16_t t, S h, S l,
                               S* __restrict o, int64_t n) {
  const S d = h - l;
  for (int64_t i = 0; i < n; ++i) {
    o[i] = l + d * static_cast<S>(b[i] >= t);
  }
}

// out[i] = bits[i] >= t ? hi : lo: a regularisers' mask from its 16-bit draws (bits int16,
// U - 2^15; regularisers.py), written in one pass instead of torch's convert, compare, scale.
void mask16(const Tensor& bits, int64_t t, double hi, double lo, Tensor out) {
  check_contiguous("mask16", {&bits, &out});
  TORCH_CHECK(bits.scalar_type() == at::kShort && bits.numel() == out.numel(),
              "mask16: bits must be int16 with out's number of values");
  const int16_t* b = bits.data_ptr<int16_t>();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "mask16", [&] {
    scalar_t* o = ptr<scalar_t>(out);
    const scalar_t h = static_cast<scalar_t>(hi), l = static_cast<scalar_t>(lo);
    at::parallel_for(0, out.numel(), 1 << 16, [&](int64_t i0, int64_t i1) {
      mask16_rows(b + i0, static_cast<int16_t>(t), h, l, o + i0, i1 - i0);
    });
  });
}

}  // namespace

// x W^T in a new tensor (`product` above), for native_ln.cpp's step products: one module.
at::Tensor rnnkit_step_product(const at::Tensor& x, const StepW& w) { return product(x, w); }

void rnnkit_register_layer_norm(pybind11::module_& m);  // native_ln.cpp's loops

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's RNN, LSTM and GRU time loops (see native.cpp)";
  m.def("sigmoid_", &sigmoid_);
  m.def("mask16", &mask16);
  m.def("set_tiled", [](bool on) {  // tiled step products on (default) or off: the previous
    const bool was = tiles_on;
    tiles_on = on;
    return was;
  });
  m.def("set_tile_limits", [](int64_t rows, int64_t weights) {  // the previous limits
    const std::tuple<int64_t, int64_t> was{tile_max_rows, tile_max_w};
    tile_max_rows = rows;
    tile_max_w = weights;
    return was;
  });
  m.def("tile_limits", [] { return std::tuple<int64_t, int64_t>{tile_max_rows, tile_max_w}; });
  m.def("set_row_groups", [](int64_t weights, int64_t rows) {  // the previous (W, rows)
    const std::tuple<int64_t, int64_t> was{row_split_w, row_split_rows};
    row_split_w = weights;
    row_split_rows = rows;
    return was;
  });
  m.def("tile_width", &tile_width);  // 16 (AVX-512), 8 (AVX2 + FMA) or 0: no tiles
  m.def("tiled", &tiled);            // (rows, N, K): whether x W^T takes the tiles
  m.def("lstm_cell", &lstm_cell);
  m.def("lstm_steps", &lstm_steps);
  m.def("rnn_forward", &rnn_forward);
  m.def("rnn_backward", &rnn_backward);
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  rnnkit_register_layer_norm(m);
}
