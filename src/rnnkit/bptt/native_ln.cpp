// The time loops of the layer-normalised kernels in C++ (CPU tensors only; built into the
// module of native.cpp, which registers them): each cell's forward and backward loop over
// time, the twins of the Python loops in ln_lstm.py, ln_gru.py and ln_rnn.py (see their
// docstrings for the equations; bptt/layer_norm.py for what runs before and after them).
//
// Per step: one product (native.cpp's: MKL's packed GEMM where gemm.step_weight chose it),
// then one pass per row that does all of the row's work, in true coordinates, compiled per
// x86-64 level (RNNKIT_CLONES, as native.cpp's rows):
//   forward: the input projection's LayerNorm a^ = LN(p) (p = W_ih x_t, from one GEMM over
//     all steps before the loop; a^ is not stored: the row's mean and rstd are, and the
//     backward recomputes a^ from p, one 32 MB write fewer at B32 T256 H256), the recurrent
//     one r^ = LN(q) of the step's product q, the gates, and the LSTM's cell LayerNorm (the
//     GRU's u = gamma_hh r^ + b_hh is not stored either: its backward recomputes u_n);
//   backward: the gates' gradients, the LayerNorms' backward (dR of r, dP of p, which the
//     caller turns into dW_hh, dh, dx and dW_ih with GEMMs), and the gains' and biases'
//     gradients summed into this thread's rows of `acc` (summed over threads by the caller),
//     so that no (T, B, G*H) gradient of the gates is ever written out.
// Reductions over a row run in kLanes partial sums (vectorised); sigmoid and tanh are
// native_math.h's.
//
//   LN rows: v^ = (v - mean v) rstd, rstd = 1 / sqrt(var v + eps) (biased variance), and
//   backward dv = rstd (dv^ - mean(dv^) - v^ mean(dv^ v^)) with dv^ = gamma dy.
//
// The regularisers in the loops (`Noise`, each optional, in the kernel's rows): recurrent
// dropout's mask m (B, P) on h_{t-1} in the product, zoneout's weights k_h (T, B, P) and the
// LSTM's k_c (T, B, H) mixing each new state with the last (tensor ops after the row pass).

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "native_math.h"  // RNNKIT_CLONES, RNNKIT_INLINE, sigmoid, tanh_

// Before a row loop over several row pointers: they never overlap. GCC honours __restrict__
// on parameters only, and versioning a loop over 6-9 pointers for aliasing exceeds its limit,
// so without this such loops stayed scalar (-fopt-info-vec; perf showed the GRU's forward
// row loop in scalar code).
#define RNNKIT_IVDEP _Pragma("GCC ivdep")

// A weight ready for many products x W^T (gemm.StepWeight: packed, W, library, rows) and
// the product itself, native.cpp's (MKL's packed GEMM where gemm.step_weight chose it).
using StepW = std::tuple<at::Tensor, at::Tensor, int64_t, int64_t>;
at::Tensor rnnkit_step_product(const at::Tensor& x, const StepW& w);

namespace {

using at::Tensor;
using Steps = std::vector<std::tuple<int64_t, int64_t, int64_t>>;  // (t, b_t, b_{t+1})
using Opt = std::optional<Tensor>;
constexpr double kEps = 1e-5;                                      // torch.nn.LayerNorm's
constexpr int64_t kLanes = 32;  // partial sums of a row's reductions (two AVX-512 vectors)

struct Noise {
  std::optional<Tensor> rec, k_h, k_c;
};

// rows [0, n) of step t of a (T, B, .) tensor
Tensor at_step(const Tensor& x, int64_t t, int64_t n) { return x[t].narrow(0, 0, n); }

// s_t = k s_{t-1} + (1 - k) s~_t in place over rows [0, bt) of step t of S (zoneout's mix)
void zone(const Tensor& S, const Tensor& prev, const std::optional<Tensor>& k, int64_t t,
          int64_t bt) {
  if (k) at_step(S, t, bt).lerp_(prev, at_step(*k, t, bt));
}

template <typename S>
S* ptr(const Tensor& x) {
  return x.data_ptr<S>();
}

template <typename S>
const S* optr(const std::optional<Tensor>& x) {
  return x ? x->data_ptr<S>() : nullptr;
}

// This thread's accumulators: rows [k n, (k + 1) n) of acc (threads, n), k its thread number.
template <typename S>
S* thread_acc(const Tensor& acc) {
  const int64_t k = at::get_thread_num();
  TORCH_CHECK(k < acc.size(0), "rnnkit: more threads than accumulators");
  return ptr<S>(acc) + k * acc.size(1);
}

// ---- one row's LayerNorm pieces (inlined into the rows' functions, compiled per level) ----

// sum_{j < n} f(j) in kLanes partial sums (a vector of them; the order is not a serial sum's)
template <typename S, typename F>
RNNKIT_INLINE S lanes_sum(int64_t n, const F& f) {
  S acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) acc[k] += f(j + k);
  }
  S s = 0;
  for (; j < n; ++j) s += f(j);
  for (int64_t k = 0; k < kLanes; ++k) s += acc[k];
  return s;
}

// (mean, rstd) of v[0, n): two passes over the row (in cache), biased variance
template <typename S>
RNNKIT_INLINE std::pair<S, S> moments(const S* __restrict__ v, int64_t n) {
  const S mean = lanes_sum<S>(n, [&](int64_t j) { return v[j]; }) / S(n);
  const S var = lanes_sum<S>(n, [&](int64_t j) { return (v[j] - mean) * (v[j] - mean); });
  return {mean, S(1) / std::sqrt(var / S(n) + S(kEps))};
}

// v^ = (v - mean) rstd in place over n values; returns rstd
template <typename S>
RNNKIT_INLINE S normalise(S* __restrict__ v, int64_t n) {
  const auto [mean, rstd] = moments(v, n);
  for (int64_t j = 0; j < n; ++j) v[j] = (v[j] - mean) * rstd;
  return rstd;
}

// (sum_j f(j), sum_j g(j)) over j < n, in one pass of kLanes partial sums each
template <typename S, typename F1, typename F2>
RNNKIT_INLINE std::pair<S, S> lanes_sum2(int64_t n, const F1& f, const F2& g) {
  S acc_f[kLanes] = {}, acc_g[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) {
      acc_f[k] += f(j + k);
      acc_g[k] += g(j + k);
    }
  }
  S sf = 0, sg = 0;
  for (; j < n; ++j) {
    sf += f(j);
    sg += g(j);
  }
  for (int64_t k = 0; k < kLanes; ++k) {
    sf += acc_f[k];
    sg += acc_g[k];
  }
  return {sf, sg};
}

// A LayerNorm's backward over one row of n values, and its parameters' gradients:
//   dv = rstd (dv^ - mean(dv^) - v^ mean(dv^ v^)), dv^ = gain d: written to out, or added
//   to it (kAdd);  acc[0, n) += d v^ (dgamma), acc[n, 2n) += d (dbeta)
template <bool kAdd, typename S>
RNNKIT_INLINE void ln_grad(const S* __restrict__ gain, const S* __restrict__ d,
                           const S* __restrict__ vh, S rstd, S* __restrict__ out,
                           S* __restrict__ acc, int64_t n) {
  const auto [s1, s2] = lanes_sum2<S>(
      n, [&](int64_t j) { return gain[j] * d[j]; },
      [&](int64_t j) { return gain[j] * d[j] * vh[j]; });
  const S m1 = s1 / S(n), m2 = s2 / S(n);
  for (int64_t j = 0; j < n; ++j) {
    const S dv = rstd * (gain[j] * d[j] - m1 - vh[j] * m2);
    out[j] = kAdd ? out[j] + dv : dv;
    acc[j] += d[j] * vh[j];
    acc[n + j] += d[j];
  }
}

// The two LayerNorms of a row's pre-activations over G values, a^ = LN(p) (not stored: the
// backward recomputes it from p and st = (mean, rstd), written here) and r^ = LN(q) into r
// (q: the product's row), and z = gamma_ih a^ + b + gamma_hh r^; returns rstd_r
template <typename S>
RNNKIT_INLINE S pre_activations(const S* __restrict__ p, const S* __restrict__ q,
                                S* __restrict__ r, S* __restrict__ z, const S* __restrict__ gih,
                                const S* __restrict__ b, const S* __restrict__ ghh,
                                S* __restrict__ st, int64_t G) {
  const auto [ma, ra] = moments(p, G);
  const auto [mr, rr] = moments(q, G);
  for (int64_t j = 0; j < G; ++j) {
    const S rh = (q[j] - mr) * rr;
    r[j] = rh;
    z[j] = gih[j] * ((p[j] - ma) * ra) + b[j] + ghh[j] * rh;
  }
  st[0] = ma;
  st[1] = ra;
  return rr;
}

// The input side of a row's backward, from the gradient da of a = gamma_ih a^ + b, with
// a^ = (p - mean) rstd recomputed into ah (scratch; st = (mean, rstd)): dP = rstd (gamma_ih
// da ...) (through a^ = LN(p)), dgamma_ih and db_ih into acc[0, 2G)
template <typename S>
RNNKIT_INLINE void input_grad(const S* __restrict__ da, const S* __restrict__ p, const S* st,
                              const S* __restrict__ gih, S* __restrict__ dp, S* __restrict__ acc,
                              S* __restrict__ ah, int64_t G) {
  const S mean = st[0], rstd = st[1];
  for (int64_t j = 0; j < G; ++j) ah[j] = (p[j] - mean) * rstd;
  ln_grad<false>(gih, da, ah, rstd, dp, acc, G);
}

// The recurrent side, from the gradient du of u = gamma_hh r^ (+ b_hh): dR = rstd_r
// (gamma_hh du ...) (through r^ = LN(r)), dgamma_hh and db_hh into acc[0, 2G)
template <typename S>
RNNKIT_INLINE void recurrent_grad_row(const S* __restrict__ du, const S* __restrict__ rh, S rs_r,
                                      const S* __restrict__ ghh, S* __restrict__ dr,
                                      S* __restrict__ acc, int64_t G) {
  ln_grad<false>(ghh, du, rh, rs_r, dr, acc, G);
}

// What every cell's rows read: the LayerNorms' gains and the biases (b: what adds to
// gamma_ih a^, b_ih and for the RNN and LSTM b_hh too; b_hh: the GRU's, in u; null if none)
template <typename S>
struct Weights {
  const S *g_ih, *b, *g_hh, *b_hh, *g_c, *b_c;
};

template <typename S>
Weights<S> weights_of(const Tensor& g_ih, const Tensor& g_hh, const Opt& b, const Opt& b_hh = {},
                      const Opt& g_c = {}, const Opt& b_c = {}) {
  return {ptr<S>(g_ih), optr<S>(b), ptr<S>(g_hh), optr<S>(b_hh), optr<S>(g_c), optr<S>(b_c)};
}

// r_t = W_hh (m h_{t-1}) for rows [0, bt), in a new tensor (m: recurrent dropout's mask, or
// none); its rows are contiguous, b_t of them or more (the packed GEMM's, native.cpp)
Tensor recurrent_product(const Tensor& prev, const StepW& w_hh, const Opt& rec, int64_t bt) {
  return rnnkit_step_product(rec ? prev * rec->narrow(0, 0, bt) : prev, w_hh);
}

// dh_t (rows [0, bt) of DH[t]): m dR_{t+1} W_hh + k_{t+1} dh_{t+1} + dout_t for the rows
// running at t + 1 (m: recurrent dropout's mask or 1; k: zoneout's weights of h, or 0;
// further terms added by the caller), dout_t + dL/dh_n for the rows ending at t.
// w_hh_t: W_hh^T as a StepW (products x W_hh).
template <typename S>
void recurrent_grad(const Tensor& DH, const Tensor& dR, const StepW& w_hh_t, const Noise& noise,
                    const Tensor& dout, const Tensor& dh_n, int64_t t, int64_t bt, int64_t bn) {
  const int64_t B = DH.size(1), P = DH.size(2);
  S* dh = ptr<S>(DH) + t * B * P;
  const S* d = ptr<S>(dout) + t * B * P;
  if (bn) {  // one pass over the product's rows (no ATen op per step: each cost ~10 us)
    const Tensor rec = rnnkit_step_product(at_step(dR, t + 1, bn), w_hh_t);  // rows of P
    const S* r = ptr<S>(rec);
    const S* m = noise.rec ? ptr<S>(*noise.rec) : nullptr;
    for (int64_t j = 0; j < bn * P; ++j) dh[j] = d[j] + (m ? m[j] * r[j] : r[j]);
    if (noise.k_h) {
      const S* k = ptr<S>(*noise.k_h) + (t + 1) * B * P;
      const S* dh1 = dh + B * P;
      for (int64_t j = 0; j < bn * P; ++j) dh[j] += k[j] * dh1[j];
    }
  }
  const S* dhn = ptr<S>(dh_n);
  for (int64_t j = bn * P; j < bt * P; ++j) dh[j] = d[j] + dhn[j];
}

// ---- LSTM (ln_lstm.py) ----------------------------------------------------------------------

// One LSTM row's tensors at step t: rows of the (T, B, .) buffers, c_{t-1}'s row cp, and
// where its three rstds go
template <typename S>
struct LstmRow {
  const S *p, *q, *cp;  // W_ih x_t, the product W_hh (m h_{t-1}), c_{t-1}
  S *r, *z, *c, *ch, *m;  // r^, gates, c~, c^, m_t
  S *st_a, *rs_r, *rs_c;  // (mean, rstd) of p, rstd of q and c~
};

// One LSTM row at step t, after its products p = W_ih x_t, q = W_hh (m h_{t-1}):
//   a^ = LN(p), r^ = LN(q),  z = [i, f, g, o] = act(gamma_ih a^ + b + gamma_hh r^)
//   c~ = f c_{t-1} + i g,  c^ = LN(c~),  m = o tanh(gamma_c c^ + beta_c)
template <typename S>
RNNKIT_INLINE void lstm_row_impl(const Weights<S>& w, const LstmRow<S>& x, int64_t H) {
  S* __restrict__ z = x.z;
  S* __restrict__ c = x.c;
  S* __restrict__ ch = x.ch;
  S* __restrict__ m = x.m;
  const S *__restrict__ cp = x.cp, *__restrict__ gc = w.g_c, *__restrict__ bc = w.b_c;
  const S rr = pre_activations(x.p, x.q, x.r, z, w.g_ih, w.b, w.g_hh, x.st_a, 4 * H);
  RNNKIT_IVDEP
  for (int64_t j = 0; j < 2 * H; ++j) z[j] = sigmoid(z[j]);
  RNNKIT_IVDEP
  for (int64_t j = 2 * H; j < 3 * H; ++j) z[j] = tanh_(z[j]);
  RNNKIT_IVDEP
  for (int64_t j = 3 * H; j < 4 * H; ++j) z[j] = sigmoid(z[j]);
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) c[j] = z[H + j] * cp[j] + z[j] * z[2 * H + j];  // c~_t
  const auto [mc, rc] = moments(c, H);
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) ch[j] = (c[j] - mc) * rc;  // c^_t
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) m[j] = z[3 * H + j] * tanh_(gc[j] * ch[j] + bc[j]);
  *x.rs_r = rr;
  *x.rs_c = rc;
}
RNNKIT_CLONES void lstm_row(const Weights<float>& w, const LstmRow<float>& x, int64_t H) {
  lstm_row_impl(w, x, H);
}
void lstm_row(const Weights<double>& w, const LstmRow<double>& x, int64_t H) {
  lstm_row_impl(w, x, H);
}

// What one LSTM row's backward reads (the forward's rows, dm_t = dL/dm_t, dC_t the returned
// c_t's own gradient and k_c zoneout's weights, null if none) and writes: dc (dL/dc_t in,
// dL/dc_{t-1} out), dR and dP's rows, this thread's sums acc (4, 4H) and acc_c (2, H)
template <typename S>
struct LstmGradRow {
  const S *z, *p, *st_a, *rh, *ch, *cp, *kc, *dC, *dm;  // p: W_ih x_t, st_a its (mean, rstd)
  S rs_r, rs_c;
  S *dc, *dr, *dp, *acc, *acc_c, *scratch;  // scratch: 10H values
};

// One LSTM row's backward at step t (ln_lstm.py's docstring), y = gamma_c c^ + beta_c:
//   dz_o = dm tanh(y) o (1 - o),  dy = dm o (1 - tanh^2 y)
//   dc~ = (1 - k_c) dc_t + rstd_c (gamma_c dy ...)                 (through c^ = LN(c~))
//   dz_i = dc~ g i (1 - i),  dz_f = dc~ c_{t-1} f (1 - f),  dz_g = dc~ i (1 - g^2)
//   dc_{t-1} = k_c dc_t + f dc~
//   dR = rstd_r (gamma_hh dz ...),  dP = rstd_a (gamma_ih dz ...)  (through r^, a^)
//   acc += [dz a^, dz, dz r^, dz] (dgamma_ih, db_ih, dgamma_hh, db_hh), acc_c += [dy c^, dy]
template <typename S>
RNNKIT_INLINE void lstm_grad_row_impl(const Weights<S>& w, const LstmGradRow<S>& x, int64_t H) {
  S* __restrict__ dz = x.scratch;
  S* __restrict__ dy = dz + 4 * H;
  S* __restrict__ d_c = dy + H;
  S* __restrict__ dc = x.dc;
  const S *__restrict__ i = x.z, *__restrict__ f = x.z + H, *__restrict__ g = x.z + 2 * H;
  const S *__restrict__ o = x.z + 3 * H, *__restrict__ ch = x.ch, *__restrict__ dm = x.dm;
  const S *__restrict__ cp = x.cp, *__restrict__ kc = x.kc, *__restrict__ dC = x.dC;
  const S *__restrict__ gc = w.g_c, *__restrict__ bc = w.b_c;
  if (dC) {
    RNNKIT_IVDEP
    for (int64_t j = 0; j < H; ++j) dc[j] += dC[j];
  }
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) {
    const S tc = tanh_(gc[j] * ch[j] + bc[j]);  // tanh y_t
    dz[3 * H + j] = dm[j] * tc * o[j] * (S(1) - o[j]);
    dy[j] = dm[j] * o[j] * (S(1) - tc * tc);
  }
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) d_c[j] = kc ? (S(1) - kc[j]) * dc[j] : dc[j];
  ln_grad<true>(w.g_c, dy, ch, x.rs_c, d_c, x.acc_c, H);  // dc~_t
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) {
    dz[j] = d_c[j] * g[j] * i[j] * (S(1) - i[j]);           // dz_i
    dz[H + j] = d_c[j] * cp[j] * f[j] * (S(1) - f[j]);      // dz_f
    dz[2 * H + j] = d_c[j] * i[j] * (S(1) - g[j] * g[j]);   // dz_g
    dc[j] = (kc ? kc[j] * dc[j] : S(0)) + d_c[j] * f[j];  // dc_{t-1}
  }
  recurrent_grad_row(dz, x.rh, x.rs_r, w.g_hh, x.dr, x.acc + 8 * H, 4 * H);
  input_grad(dz, x.p, x.st_a, w.g_ih, x.dp, x.acc, d_c + H, 4 * H);
}
RNNKIT_CLONES void lstm_grad_row(const Weights<float>& w, const LstmGradRow<float>& x,
                                 int64_t H) {
  lstm_grad_row_impl(w, x, H);
}
void lstm_grad_row(const Weights<double>& w, const LstmGradRow<double>& x, int64_t H) {
  lstm_grad_row_impl(w, x, H);
}

template <typename S>
void lstm_forward_impl(const Steps& steps, const Weights<S>& w, const Tensor& AH,
                       const Tensor& st_a, const Tensor& h0, const Tensor& c0,
                       const StepW& w_hh, const Opt& w_hr, const Noise& noise, const Tensor& Z,
                       const Tensor& out, const Tensor& h_n, const Tensor& c_n, const Tensor& R,
                       const Tensor& rs_r, const Tensor& C, const Tensor& Ch, const Tensor& rs_c) {
  const int64_t B = Z.size(1), H = C.size(2), P = out.size(2), G = 4 * H;
  Tensor M = w_hr ? at::zeros({B, H}, Z.options()) : Tensor();  // m_t, before W_hr
  for (const auto& [t, bt, bn] : steps) {
    Tensor prev = t ? at_step(out, t - 1, bt) : h0.narrow(0, 0, bt);
    const Tensor q = recurrent_product(prev, w_hh, noise.rec, bt);
    S* m_base = w_hr ? ptr<S>(M) : ptr<S>(out) + t * B * P;
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        const S* cp = t ? ptr<S>(C) + (row - B) * H : ptr<S>(c0) + b * H;
        lstm_row(w,
                 LstmRow<S>{ptr<S>(AH) + row * G, ptr<S>(q) + b * G, cp, ptr<S>(R) + row * G,
                            ptr<S>(Z) + row * G, ptr<S>(C) + row * H, ptr<S>(Ch) + row * H,
                            m_base + b * H, ptr<S>(st_a) + 2 * row, ptr<S>(rs_r) + row,
                            ptr<S>(rs_c) + row},
                 H);
      }
    });
    if (w_hr) {  // h~_t = W_hr m_t
      Tensor h = at_step(out, t, bt);
      at::mm_out(h, M.narrow(0, 0, bt), w_hr->t());
    }
    zone(C, t ? at_step(C, t - 1, bt) : c0.narrow(0, 0, bt), noise.k_c, t, bt);  // c_t
    zone(out, prev, noise.k_h, t, bt);                                           // h_t
    if (bn < bt) {  // rows [bn, bt) end here
      h_n.narrow(0, bn, bt - bn).copy_(out[t].narrow(0, bn, bt - bn));
      c_n.narrow(0, bn, bt - bn).copy_(C[t].narrow(0, bn, bt - bn));
    }
  }
}

// AH: W_ih x_t for every step (T, B, G); st_a (T, B, 2): each row's (mean, rstd), written;
// b: b_ih + b_hh (or none).
void ln_lstm_forward(const Steps& steps, Tensor AH, Tensor st_a, const Tensor& g_ih,
                     const Opt& b, const Tensor& h0, const Tensor& c0, const StepW& w_hh,
                     const Tensor& g_hh, const Tensor& g_c, const Tensor& b_c, const Opt& w_hr,
                     const Opt& rec, const Opt& k_h, const Opt& k_c, Tensor Z, Tensor out,
                     Tensor h_n, Tensor c_n, Tensor R, Tensor rs_r, Tensor C, Tensor Ch,
                     Tensor rs_c) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k_h, k_c};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "ln_lstm_forward", [&] {
    const auto w = weights_of<scalar_t>(g_ih, g_hh, b, {}, g_c, b_c);
    lstm_forward_impl<scalar_t>(steps, w, AH, st_a, h0, c0, w_hh, w_hr, noise, Z, out, h_n, c_n,
                                R, rs_r, C, Ch, rs_c);
  });
}

// The LSTM's forward tensors, as the backward reads them
struct LstmSaved {
  Tensor Z, AH, st_a, R, rs_r, C, Ch, rs_c, c0;
};

template <typename S>
void lstm_backward_impl(const Steps& steps, const Weights<S>& w, const LstmSaved& s,
                        const StepW& w_hh, const Opt& w_hr, const Noise& noise,
                        const Tensor& dout, const Tensor& dh_n, const Opt& dC, const Tensor& dc,
                        const Tensor& dP, const Tensor& dR, const Tensor& DH, const Tensor& acc,
                        const Tensor& acc_c) {
  const int64_t B = s.Z.size(1), H = s.C.size(2), G = 4 * H;
  const S *dCp = optr<S>(dC), *kcp = optr<S>(noise.k_c);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    recurrent_grad<S>(DH, dR, w_hh, noise, dout, dh_n, t, bt, bn);  // dh_t
    Tensor dh = at_step(DH, t, bt);  // dh~_t = (1 - k_h) dh_t, dm_t = dh~_t W_hr or dh~_t
    if (noise.k_h) dh = dh * (1 - at_step(*noise.k_h, t, bt));
    const Tensor dm = w_hr ? at::mm(dh, *w_hr) : dh.contiguous();
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      std::vector<S> scratch(10 * H);
      S *sums = thread_acc<S>(acc), *sums_c = thread_acc<S>(acc_c);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        const S* cp = t ? ptr<S>(s.C) + (row - B) * H : ptr<S>(s.c0) + b * H;
        const LstmGradRow<S> x{ptr<S>(s.Z) + row * G, ptr<S>(s.AH) + row * G,
                               ptr<S>(s.st_a) + 2 * row, ptr<S>(s.R) + row * G,
                               ptr<S>(s.Ch) + row * H, cp, kcp ? kcp + row * H : nullptr,
                               dCp ? dCp + row * H : nullptr, ptr<S>(dm) + b * H,
                               ptr<S>(s.rs_r)[row], ptr<S>(s.rs_c)[row], ptr<S>(dc) + b * H,
                               ptr<S>(dR) + row * G, ptr<S>(dP) + row * G, sums, sums_c,
                               scratch.data()};
        lstm_grad_row(w, x, H);
      }
    });
  }
}

// Fills dP (dL/d(W_ih x_t)), dR (dL/dr_t), DH (dL/dh_t) and the threads' sums acc (threads,
// 4 * 4H: dgamma_ih, db_ih, dgamma_hh, db_hh) and acc_c (threads, 2H: dgamma_c, dbeta_c),
// zeroed by the caller; leaves dL/dc_0 in dc.
void ln_lstm_backward(const Steps& steps, const Tensor& Z, const Tensor& AH, const Tensor& st_a,
                      const Tensor& R, const Tensor& rs_r, const Tensor& C, const Tensor& Ch,
                      const Tensor& rs_c, const Tensor& c0, const StepW& w_hh,
                      const Tensor& g_ih, const Tensor& g_hh, const Tensor& g_c,
                      const Tensor& b_c, const Opt& w_hr, const Opt& rec, const Opt& k_h,
                      const Opt& k_c, const Tensor& dout, const Tensor& dh_n, const Opt& dC,
                      Tensor dc, Tensor dP, Tensor dR, Tensor DH, Tensor acc, Tensor acc_c) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k_h, k_c};
  const LstmSaved s{Z, AH, st_a, R, rs_r, C, Ch, rs_c, c0.contiguous()};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "ln_lstm_backward", [&] {
    const auto w = weights_of<scalar_t>(g_ih, g_hh, {}, {}, g_c, b_c);
    lstm_backward_impl<scalar_t>(steps, w, s, w_hh, w_hr, noise, dout, dh_n, dC, dc, dP, dR, DH,
                                 acc, acc_c);
  });
}

// ---- GRU (ln_gru.py) ------------------------------------------------------------------------

// One GRU row at step t, after its products p = W_ih x_t, q = W_hh (m h_{t-1}):
//   a^ = LN(p), r^ = LN(q) into r,  a = gamma_ih a^ + b_ih,  u = gamma_hh r^ + b_hh
//   [r, z] = sigmoid(a_rz + u_rz),  n = tanh(a_n + r u_n),  h~ = n + z (h_{t-1} - n)
// with the gates [r, z, n] over a, u in the caller's scratch (the backward recomputes u_n
// from r^), st: p's (mean, rstd) (a^ is recomputed from them in the backward); returns rstd_r.
template <typename S>
RNNKIT_INLINE S gru_row_impl(const Weights<S>& w, const S* __restrict__ p,
                             const S* __restrict__ q, S* __restrict__ r, S* __restrict__ a,
                             S* __restrict__ u, const S* __restrict__ hp, S* __restrict__ h,
                             S* __restrict__ st, int64_t H) {
  const int64_t G = 3 * H;
  const S *__restrict__ gih = w.g_ih, *__restrict__ b = w.b;
  const S *__restrict__ ghh = w.g_hh, *__restrict__ bhh = w.b_hh;
  const auto [ma, ra] = moments(p, G);
  const auto [mr, rr] = moments(q, G);
  RNNKIT_IVDEP
  for (int64_t j = 0; j < G; ++j) {
    r[j] = (q[j] - mr) * rr;
    a[j] = gih[j] * ((p[j] - ma) * ra) + b[j];
    u[j] = ghh[j] * r[j] + bhh[j];
  }
  RNNKIT_IVDEP
  for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(a[j] + u[j]);
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) a[2 * H + j] = tanh_(a[2 * H + j] + a[j] * u[2 * H + j]);
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) h[j] = a[2 * H + j] + a[H + j] * (hp[j] - a[2 * H + j]);
  st[0] = ma;
  st[1] = ra;
  return rr;
}
RNNKIT_CLONES float gru_row(const Weights<float>& w, const float* p, const float* q, float* r,
                            float* a, float* u, const float* hp, float* h, float* st,
                            int64_t H) {
  return gru_row_impl(w, p, q, r, a, u, hp, h, st, H);
}
double gru_row(const Weights<double>& w, const double* p, const double* q, double* r, double* a,
               double* u, const double* hp, double* h, double* st, int64_t H) {
  return gru_row_impl(w, p, q, r, a, u, hp, h, st, H);
}

// What one GRU row's backward reads (the forward's rows, r^ in rh; zoneout's k; dout_t; for
// a row running at t + 1 its rec = m dR_{t+1} W_hh, z_{t+1}, dh_{t+1} and k_{t+1}, and for
// one ending at t its dL/dh_n, each null if none) and writes: dh_t, dR and dP's rows, this
// thread's sums acc (4, 3H)
template <typename S>
struct GruGradRow {
  const S *a, *p, *st_a, *rh, *hp, *k;  // p: W_ih x_t, st_a: its (mean, rstd)
  const S *dout, *rec, *z1, *dh1, *k1, *dhn;
  S rs_r;
  S *dh, *dr, *dp, *acc, *scratch;  // scratch: 9H values
};

// One GRU row's backward at step t (ln_gru.py's docstring):
//   dh_t = dout_t + rec + zk dh_{t+1}, zk = k_{t+1} + (1 - k_{t+1}) z_{t+1}  (running at t + 1)
//   dh_t = dout_t + dL/dh_n                                                  (ending at t)
//   dh~ = (1 - k) dh_t,  K_n = dh~ (1 - z)(1 - n^2),  u_n = gamma_hh r^_n + b_hh (again)
//   da_r = du_r = K_n u_n r (1 - r),  da_z = du_z = dh~ (h_{t-1} - n) z (1 - z)
//   da_n = K_n,  du_n = K_n r
//   dR = rstd_r (gamma_hh du ...),  dP = rstd_a (gamma_ih da ...)  (through r^, a^)
//   acc += [da a^, da, du r^, du] (dgamma_ih, db_ih, dgamma_hh, db_hh)
template <typename S>
RNNKIT_INLINE void gru_grad_row_impl(const Weights<S>& w, const GruGradRow<S>& x, int64_t H) {
  const int64_t G = 3 * H;
  S* __restrict__ da = x.scratch;
  S* __restrict__ du = da + G;
  S* __restrict__ dh = x.dh;
  const S *__restrict__ a = x.a, *__restrict__ hp = x.hp, *__restrict__ rh = x.rh;
  const S *__restrict__ ghh = w.g_hh, *__restrict__ bhh = w.b_hh;
  const S *__restrict__ k = x.k, *__restrict__ k1 = x.k1;
  const S *__restrict__ z1 = x.z1, *__restrict__ dh1 = x.dh1, *__restrict__ d = x.dout;
  const S *__restrict__ rec = x.rec, *__restrict__ dhn = x.dhn;
  if (z1) {
    RNNKIT_IVDEP
    for (int64_t j = 0; j < H; ++j) {
      dh[j] = (d[j] + rec[j]) + (k1 ? k1[j] + (S(1) - k1[j]) * z1[j] : z1[j]) * dh1[j];
    }
  } else {
    RNNKIT_IVDEP
    for (int64_t j = 0; j < H; ++j) dh[j] = d[j] + dhn[j];
  }
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) {
    const S r = a[j], z = a[H + j], n = a[2 * H + j];
    const S dht = k ? (S(1) - k[j]) * dh[j] : dh[j];  // dh~_t
    const S k_n = dht * (S(1) - z) * (S(1) - n * n);   // dh~_t K_n
    const S u_n = ghh[2 * H + j] * rh[2 * H + j] + bhh[2 * H + j];
    da[j] = du[j] = k_n * u_n * r * (S(1) - r);
    da[H + j] = du[H + j] = dht * (hp[j] - n) * z * (S(1) - z);
    da[2 * H + j] = k_n;
    du[2 * H + j] = k_n * r;
  }
  recurrent_grad_row(du, x.rh, x.rs_r, w.g_hh, x.dr, x.acc + 2 * G, G);
  input_grad(da, x.p, x.st_a, w.g_ih, x.dp, x.acc, du + G, G);
}
RNNKIT_CLONES void gru_grad_row(const Weights<float>& w, const GruGradRow<float>& x, int64_t H) {
  gru_grad_row_impl(w, x, H);
}
void gru_grad_row(const Weights<double>& w, const GruGradRow<double>& x, int64_t H) {
  gru_grad_row_impl(w, x, H);
}

template <typename S>
void gru_forward_impl(const Steps& steps, const Weights<S>& w, const Tensor& AH,
                      const Tensor& st_a, const Tensor& h0, const StepW& w_hh,
                      const Noise& noise, const Tensor& A, const Tensor& out, const Tensor& h_n,
                      const Tensor& R, const Tensor& rs_r) {
  const int64_t B = A.size(1), H = out.size(2), G = 3 * H;
  for (const auto& [t, bt, bn] : steps) {
    Tensor prev = t ? at_step(out, t - 1, bt) : h0.narrow(0, 0, bt);
    const Tensor q = recurrent_product(prev, w_hh, noise.rec, bt);
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      std::vector<S> u(G);  // u_t's row
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        const S* hp = t ? ptr<S>(out) + (row - B) * H : ptr<S>(h0) + b * H;
        ptr<S>(rs_r)[row] = gru_row(w, ptr<S>(AH) + row * G, ptr<S>(q) + b * G,
                                    ptr<S>(R) + row * G, ptr<S>(A) + row * G,
                                    u.data(), hp, ptr<S>(out) + row * H,
                                    ptr<S>(st_a) + 2 * row, H);
      }
    });
    zone(out, prev, noise.k_h, t, bt);  // h_t
    if (bn < bt) h_n.narrow(0, bn, bt - bn).copy_(out[t].narrow(0, bn, bt - bn));
  }
}

// AH: W_ih x_t for every step (T, B, G); st_a (T, B, 2): each row's (mean, rstd), written;
// b_ih, b_hh: zeros if none.
void ln_gru_forward(const Steps& steps, Tensor AH, Tensor st_a, const Tensor& g_ih,
                    const Tensor& b_ih, const Tensor& h0, const StepW& w_hh, const Tensor& g_hh,
                    const Tensor& b_hh, const Opt& rec, const Opt& k, Tensor A, Tensor out,
                    Tensor h_n, Tensor R, Tensor rs_r) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "ln_gru_forward", [&] {
    const auto w = weights_of<scalar_t>(g_ih, g_hh, b_ih, b_hh);
    gru_forward_impl<scalar_t>(steps, w, AH, st_a, h0, w_hh, noise, A, out, h_n, R, rs_r);
  });
}

template <typename S>
void gru_backward_impl(const Steps& steps, const Weights<S>& w, const Tensor& A,
                       const Tensor& AH, const Tensor& st_a, const Tensor& R, const Tensor& rs_r,
                       const Tensor& out, const Tensor& h0, const StepW& w_hh,
                       const Noise& noise, const Tensor& dout, const Tensor& dh_n,
                       const Tensor& dP, const Tensor& dR, const Tensor& DH, const Tensor& acc) {
  const int64_t B = A.size(1), H = out.size(2), G = 3 * H;
  const S* kp = optr<S>(noise.k_h);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    Tensor rec;  // m dR_{t+1} W_hh, rows [0, bn) (the rows add dout_t and zk dh_{t+1})
    if (bn) {
      rec = rnnkit_step_product(at_step(dR, t + 1, bn), w_hh);
      if (noise.rec) rec.narrow(0, 0, bn).mul_(noise.rec->narrow(0, 0, bn));
    }
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      std::vector<S> scratch(3 * G);
      S* sums = thread_acc<S>(acc);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b, next = row + B;
        const bool on = b < bn;  // running at t + 1
        const GruGradRow<S> x{
            ptr<S>(A) + row * G, ptr<S>(AH) + row * G, ptr<S>(st_a) + 2 * row,
            ptr<S>(R) + row * G,
            t ? ptr<S>(out) + (row - B) * H : ptr<S>(h0) + b * H, kp ? kp + row * H : nullptr,
            ptr<S>(dout) + row * H, on ? ptr<S>(rec) + b * H : nullptr,
            on ? ptr<S>(A) + next * G + H : nullptr, on ? ptr<S>(DH) + next * H : nullptr,
            on && kp ? kp + next * H : nullptr, on ? nullptr : ptr<S>(dh_n) + b * H,
            ptr<S>(rs_r)[row],
            ptr<S>(DH) + row * H, ptr<S>(dR) + row * G, ptr<S>(dP) + row * G, sums,
            scratch.data()};
        gru_grad_row(w, x, H);
      }
    });
  }
}

// Fills dP (dL/d(W_ih x_t)), dR (dL/dr_t), DH (dL/dh_t) and the threads' sums acc (threads,
// 4 * 3H: dgamma_ih, db_ih, dgamma_hh, db_hh), zeroed by the caller; b_hh: zeros if none.
void ln_gru_backward(const Steps& steps, const Tensor& A, const Tensor& AH, const Tensor& st_a,
                     const Tensor& R, const Tensor& rs_r, const Tensor& out, const Tensor& h0,
                     const StepW& w_hh, const Tensor& g_ih, const Tensor& g_hh,
                     const Tensor& b_hh, const Opt& rec, const Opt& k, const Tensor& dout,
                     const Tensor& dh_n, Tensor dP, Tensor dR, Tensor DH, Tensor acc) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "ln_gru_backward", [&] {
    const auto w = weights_of<scalar_t>(g_ih, g_hh, {}, b_hh);
    gru_backward_impl<scalar_t>(steps, w, A, AH, st_a, R, rs_r, out, h0.contiguous(), w_hh,
                                noise, dout, dh_n, dP, dR, DH, acc);
  });
}

// ---- Elman RNN (ln_rnn.py) ------------------------------------------------------------------

// One RNN row at step t, after its products p = W_ih x_t, q = W_hh (m h_{t-1}):
//   a^ = LN(p), r^ = LN(q) into r,  h~ = act(gamma_ih a^ + b + gamma_hh r^) into z,
//   act = tanh or relu; st: p's (mean, rstd); returns rstd_r
template <typename S>
RNNKIT_INLINE S rnn_row_impl(const Weights<S>& w, const S* __restrict__ p,
                             const S* __restrict__ q, S* __restrict__ r, S* __restrict__ z,
                             S* __restrict__ st, int64_t H, bool relu) {
  const S rs = pre_activations(p, q, r, z, w.g_ih, w.b, w.g_hh, st, H);
  if (relu) {
    RNNKIT_IVDEP
    for (int64_t j = 0; j < H; ++j) z[j] = z[j] > S(0) ? z[j] : S(0);
  } else {
    RNNKIT_IVDEP
    for (int64_t j = 0; j < H; ++j) z[j] = tanh_(z[j]);
  }
  return rs;
}
RNNKIT_CLONES float rnn_row(const Weights<float>& w, const float* p, const float* q, float* r,
                            float* z, float* st, int64_t H, bool relu) {
  return rnn_row_impl(w, p, q, r, z, st, H, relu);
}
double rnn_row(const Weights<double>& w, const double* p, const double* q, double* r, double* z,
               double* st, int64_t H, bool relu) {
  return rnn_row_impl(w, p, q, r, z, st, H, relu);
}

// One RNN row's backward at step t: dz = dh_t D_t (D = (1 - k) act'(z_t)), then
//   dR = rstd_r (gamma_hh dz ...),  dP = rstd_a (gamma_ih dz ...)   (through r^, a^)
//   acc += [dz a^, dz, dz r^, dz] (dgamma_ih, db_ih, dgamma_hh, db_hh)
template <typename S>
RNNKIT_INLINE void rnn_grad_row_impl(const Weights<S>& w, const S* __restrict__ dh,
                                     const S* __restrict__ D, const S* p, const S* st_a,
                                     const S* rh, S rs_r, S* dr, S* dp, S* acc,
                                     S* __restrict__ dz, int64_t H) {
  RNNKIT_IVDEP
  for (int64_t j = 0; j < H; ++j) dz[j] = dh[j] * D[j];
  recurrent_grad_row(dz, rh, rs_r, w.g_hh, dr, acc + 2 * H, H);
  input_grad(dz, p, st_a, w.g_ih, dp, acc, dz + H, H);  // dz: 2H scratch values
}
RNNKIT_CLONES void rnn_grad_row(const Weights<float>& w, const float* dh, const float* D,
                                const float* p, const float* st_a, const float* rh, float rs_r,
                                float* dr, float* dp, float* acc, float* dz, int64_t H) {
  rnn_grad_row_impl(w, dh, D, p, st_a, rh, rs_r, dr, dp, acc, dz, H);
}
void rnn_grad_row(const Weights<double>& w, const double* dh, const double* D, const double* p,
                  const double* st_a, const double* rh, double rs_r, double* dr, double* dp,
                  double* acc, double* dz, int64_t H) {
  rnn_grad_row_impl(w, dh, D, p, st_a, rh, rs_r, dr, dp, acc, dz, H);
}

template <typename S>
void rnn_forward_impl(const Steps& steps, const Weights<S>& w, const Tensor& AH,
                      const Tensor& st_a, const Tensor& h0, const StepW& w_hh,
                      const Noise& noise, bool relu, const Tensor& Z, const Tensor& h_n,
                      const Tensor& R, const Tensor& rs_r, const Opt& h_tilde) {
  const int64_t B = Z.size(1), H = Z.size(2);
  for (const auto& [t, bt, bn] : steps) {
    Tensor prev = t ? at_step(Z, t - 1, bt) : h0.narrow(0, 0, bt);
    const Tensor q = recurrent_product(prev, w_hh, noise.rec, bt);
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        ptr<S>(rs_r)[row] = rnn_row(w, ptr<S>(AH) + row * H, ptr<S>(q) + b * H,
                                    ptr<S>(R) + row * H, ptr<S>(Z) + row * H,
                                    ptr<S>(st_a) + 2 * row, H, relu);  // h~_t
      }
    });
    if (noise.k_h) {  // h_t = k h_{t-1} + (1 - k) h~_t, h~_t kept for the backward
      at_step(*h_tilde, t, bt).copy_(at_step(Z, t, bt));
      zone(Z, prev, noise.k_h, t, bt);
    }
    if (bn < bt) h_n.narrow(0, bn, bt - bn).copy_(Z[t].narrow(0, bn, bt - bn));
  }
}

// AH: W_ih x_t for every step (T, B, G); st_a (T, B, 2): each row's (mean, rstd), written;
// b: b_ih + b_hh (or none);
// Z: h_t, written.
void ln_rnn_forward(const Steps& steps, Tensor AH, Tensor st_a, const Tensor& g_ih,
                    const Opt& b, const Tensor& h0, const StepW& w_hh, const Tensor& g_hh,
                    const Opt& rec, const Opt& k, bool relu, Tensor Z, Tensor h_n, Tensor R,
                    Tensor rs_r, const Opt& h_tilde) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "ln_rnn_forward", [&] {
    const auto w = weights_of<scalar_t>(g_ih, g_hh, b);
    rnn_forward_impl<scalar_t>(steps, w, AH, st_a, h0, w_hh, noise, relu, Z, h_n, R, rs_r,
                               h_tilde);
  });
}

template <typename S>
void rnn_backward_impl(const Steps& steps, const Weights<S>& w, const Tensor& D,
                       const Tensor& AH, const Tensor& st_a, const Tensor& R, const Tensor& rs_r,
                       const StepW& w_hh, const Noise& noise, const Tensor& dout,
                       const Tensor& dh_n, const Tensor& dP, const Tensor& dR, const Tensor& DH,
                       const Tensor& acc) {
  const int64_t B = D.size(1), H = D.size(2);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    recurrent_grad<S>(DH, dR, w_hh, noise, dout, dh_n, t, bt, bn);  // dh_t
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      std::vector<S> dz(2 * H);
      S* sums = thread_acc<S>(acc);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b, off = row * H;
        rnn_grad_row(w, ptr<S>(DH) + off, ptr<S>(D) + off, ptr<S>(AH) + off,
                     ptr<S>(st_a) + 2 * row, ptr<S>(R) + off, ptr<S>(rs_r)[row],
                     ptr<S>(dR) + off, ptr<S>(dP) + off, sums,
                     dz.data(), H);
      }
    });
  }
}

// Fills dP (dL/d(W_ih x_t)), dR (dL/dr_t), DH (dL/dh_t) and the threads' sums acc (threads,
// 4H: dgamma_ih, db_ih, dgamma_hh, db_hh), zeroed by the caller.
void ln_rnn_backward(const Steps& steps, const Tensor& D, const Tensor& AH, const Tensor& st_a,
                     const Tensor& R, const Tensor& rs_r, const StepW& w_hh,
                     const Tensor& g_ih, const Tensor& g_hh, const Opt& rec, const Opt& k,
                     const Tensor& dout, const Tensor& dh_n, Tensor dP, Tensor dR, Tensor DH,
                     Tensor acc) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(D.scalar_type(), "ln_rnn_backward", [&] {
    const auto w = weights_of<scalar_t>(g_ih, g_hh, {});
    rnn_backward_impl<scalar_t>(steps, w, D.contiguous(), AH, st_a, R, rs_r, w_hh, noise, dout,
                                dh_n, dP, dR, DH, acc);
  });
}

}  // namespace

// Called by native.cpp's module definition: one module, one build.
void rnnkit_register_layer_norm(pybind11::module_& m) {
  m.def("ln_lstm_forward", &ln_lstm_forward);
  m.def("ln_lstm_backward", &ln_lstm_backward);
  m.def("ln_gru_forward", &ln_gru_forward);
  m.def("ln_gru_backward", &ln_gru_backward);
  m.def("ln_rnn_forward", &ln_rnn_forward);
  m.def("ln_rnn_backward", &ln_rnn_backward);
}
