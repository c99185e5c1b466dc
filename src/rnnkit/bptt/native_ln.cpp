// The time loops of the layer-normalised kernels in C++ (CPU tensors only; built into the
// module of native.cpp, which registers them): each cell's forward and backward loop over
// time, the twins of the Python loops in ln_lstm.py, ln_gru.py and ln_rnn.py, taking and
// filling the same tensors (see their docstrings for the equations; bptt/layer_norm.py for
// what runs before and after the loops). Per step: one product (ATen), then one pass per row
// for the LayerNorm and the pointwise work, in true coordinates: sigmoid and tanh from
// native_math.h, vectorised in float (the rows' activations compiled per x86-64 level).
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
#include <vector>

#include "native_math.h"  // RNNKIT_CLONES, RNNKIT_INLINE, sigmoid, tanh_

namespace {

using at::Tensor;
using Steps = std::vector<std::tuple<int64_t, int64_t, int64_t>>;  // (t, b_t, b_{t+1})
constexpr double kEps = 1e-5;                                      // torch.nn.LayerNorm's
constexpr int64_t kMinWork = 16384;  // elements per thread in a step's row work (native.cpp's)

// f(b0, b1) over rows [0, n) of width H, split across threads past kMinWork elements.
template <typename F>
void rows(int64_t n, int64_t H, const F& f) {
  const int64_t grain = std::max<int64_t>(1, kMinWork / std::max<int64_t>(H, 1));
  if (n <= grain) {
    f(0, n);
  } else {
    at::parallel_for(0, n, grain, f);
  }
}

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

// ---- the rows' pointwise work: one impl, a float function per x86-64 level, a double one ----

// LSTM: z = [i, f, g, o] = act(z + gamma_hh r^), c = f c_prev + i g (c~_t)
template <typename S>
RNNKIT_INLINE void lstm_gates_impl(S* __restrict__ z, const S* __restrict__ r,
                                   const S* __restrict__ ghh, const S* __restrict__ cp,
                                   S* __restrict__ c, int64_t H) {
  for (int64_t j = 0; j < 4 * H; ++j) z[j] += ghh[j] * r[j];  // z_t = a_t + gamma_hh r^_t
  for (int64_t j = 0; j < 2 * H; ++j) z[j] = sigmoid(z[j]);
  for (int64_t j = 2 * H; j < 3 * H; ++j) z[j] = tanh_(z[j]);
  for (int64_t j = 3 * H; j < 4 * H; ++j) z[j] = sigmoid(z[j]);
  for (int64_t j = 0; j < H; ++j) c[j] = z[H + j] * cp[j] + z[j] * z[2 * H + j];
}
RNNKIT_CLONES void lstm_gates(float* z, const float* r, const float* ghh, const float* cp,
                              float* c, int64_t H) {
  lstm_gates_impl(z, r, ghh, cp, c, H);
}
void lstm_gates(double* z, const double* r, const double* ghh, const double* cp, double* c,
                int64_t H) {
  lstm_gates_impl(z, r, ghh, cp, c, H);
}

// LSTM: m = o tanh(gamma_c c^ + beta_c)
template <typename S>
RNNKIT_INLINE void lstm_output_impl(const S* __restrict__ o, const S* __restrict__ ch,
                                    const S* __restrict__ gc, const S* __restrict__ bc,
                                    S* __restrict__ m, int64_t H) {
  for (int64_t j = 0; j < H; ++j) m[j] = o[j] * tanh_(gc[j] * ch[j] + bc[j]);
}
RNNKIT_CLONES void lstm_output(const float* o, const float* ch, const float* gc, const float* bc,
                               float* m, int64_t H) {
  lstm_output_impl(o, ch, gc, bc, m, H);
}
void lstm_output(const double* o, const double* ch, const double* gc, const double* bc,
                 double* m, int64_t H) {
  lstm_output_impl(o, ch, gc, bc, m, H);
}

// LSTM backward through m = o tanh(y): dz_o = dm tanh(y) o (1 - o), dy = dm o (1 - tanh^2 y)
template <typename S>
RNNKIT_INLINE void lstm_output_grad_impl(const S* __restrict__ dm, const S* __restrict__ o,
                                         const S* __restrict__ ch, const S* __restrict__ gc,
                                         const S* __restrict__ bc, S* __restrict__ dz_o,
                                         S* __restrict__ dy, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const S tc = tanh_(gc[j] * ch[j] + bc[j]);  // tanh y_t
    dz_o[j] = dm[j] * tc * o[j] * (S(1) - o[j]);
    dy[j] = dm[j] * o[j] * (S(1) - tc * tc);
  }
}
RNNKIT_CLONES void lstm_output_grad(const float* dm, const float* o, const float* ch,
                                    const float* gc, const float* bc, float* dz_o, float* dy,
                                    int64_t H) {
  lstm_output_grad_impl(dm, o, ch, gc, bc, dz_o, dy, H);
}
void lstm_output_grad(const double* dm, const double* o, const double* ch, const double* gc,
                      const double* bc, double* dz_o, double* dy, int64_t H) {
  lstm_output_grad_impl(dm, o, ch, gc, bc, dz_o, dy, H);
}

// GRU: u = gamma_hh r^ (+ b_hh, added by the caller's pass), a = [r, z, n] in place:
// r, z = sigmoid(a + u), n = tanh(a_n + r u_n), h = n + z (h_prev - n) (h~_t)
template <typename S>
RNNKIT_INLINE void gru_gates_impl(S* __restrict__ a, const S* __restrict__ u,
                                  const S* __restrict__ hp, S* __restrict__ h, int64_t H) {
  for (int64_t j = 0; j < 2 * H; ++j) a[j] = sigmoid(a[j] + u[j]);
  for (int64_t j = 0; j < H; ++j) a[2 * H + j] = tanh_(a[2 * H + j] + a[j] * u[2 * H + j]);
  for (int64_t j = 0; j < H; ++j) h[j] = a[2 * H + j] + a[H + j] * (hp[j] - a[2 * H + j]);
}
RNNKIT_CLONES void gru_gates(float* a, const float* u, const float* hp, float* h, int64_t H) {
  gru_gates_impl(a, u, hp, h, H);
}
void gru_gates(double* a, const double* u, const double* hp, double* h, int64_t H) {
  gru_gates_impl(a, u, hp, h, H);
}

// RNN: z = act(z + gamma_hh r^), act = tanh or relu
template <typename S>
RNNKIT_INLINE void rnn_act_impl(S* __restrict__ z, const S* __restrict__ r,
                                const S* __restrict__ ghh, int64_t H, bool relu) {
  for (int64_t j = 0; j < H; ++j) z[j] += ghh[j] * r[j];  // z_t = a_t + gamma_hh r^_t
  if (relu) {
    for (int64_t j = 0; j < H; ++j) z[j] = z[j] > S(0) ? z[j] : S(0);
  } else {
    for (int64_t j = 0; j < H; ++j) z[j] = tanh_(z[j]);
  }
}
RNNKIT_CLONES void rnn_act(float* z, const float* r, const float* ghh, int64_t H, bool relu) {
  rnn_act_impl(z, r, ghh, H, relu);
}
void rnn_act(double* z, const double* r, const double* ghh, int64_t H, bool relu) {
  rnn_act_impl(z, r, ghh, H, relu);
}

// v^ in place over n values; returns rstd.
template <typename S>
S normalise(S* v, int64_t n) {
  S mean = 0, var = 0;
  for (int64_t j = 0; j < n; ++j) mean += v[j];
  mean /= S(n);
  for (int64_t j = 0; j < n; ++j) var += (v[j] - mean) * (v[j] - mean);
  const S rstd = S(1) / std::sqrt(var / S(n) + S(kEps));
  for (int64_t j = 0; j < n; ++j) v[j] = (v[j] - mean) * rstd;
  return rstd;
}

// out (+)= rstd (dv^ - mean(dv^) - v^ mean(dv^ v^)), dv^ = gain * d, over n values.
template <typename S>
void normalise_backward(const S* gain, const S* d, const S* vh, S rstd, S* out, int64_t n,
                        bool accumulate) {
  S m1 = 0, m2 = 0;
  for (int64_t j = 0; j < n; ++j) {
    m1 += gain[j] * d[j];
    m2 += gain[j] * d[j] * vh[j];
  }
  m1 /= S(n);
  m2 /= S(n);
  for (int64_t j = 0; j < n; ++j) {
    const S dv = rstd * (gain[j] * d[j] - m1 - vh[j] * m2);
    out[j] = accumulate ? out[j] + dv : dv;
  }
}

// r^_t = LN(W_hh h_{t-1}) into R[t] (rows [0, bt)), rstd into rs: the step's product and
// the rows' normalisation; W_hh (m h_{t-1}) with recurrent dropout's mask m = rec.
template <typename S>
void recurrent_ln(const Tensor& R, const Tensor& rs, const Tensor& prev, const Tensor& w_hh,
                  const std::optional<Tensor>& rec, int64_t t, int64_t bt) {
  const int64_t G = R.size(2), B = R.size(1);
  Tensor r = R[t].narrow(0, 0, bt);
  at::mm_out(r, rec ? prev * rec->narrow(0, 0, bt) : prev, w_hh.t());
  S* Rp = ptr<S>(R) + t * B * G;
  S* rsp = ptr<S>(rs) + t * B;
  rows(bt, G, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) rsp[b] = normalise(Rp + b * G, G);
  });
}

// dh_t (rows [0, bt) of DH[t]): m dR_{t+1} W_hh + k_{t+1} dh_{t+1} + dout_t for the rows
// running at t + 1 (m: recurrent dropout's mask or 1; k: zoneout's weights of h, or 0;
// further terms added by the caller), dout_t + dL/dh_n for the rows ending at t.
template <typename S>
void recurrent_grad(const Tensor& DH, const Tensor& dR, const Tensor& w_hh, const Noise& noise,
                    const Tensor& dout, const Tensor& dh_n, int64_t t, int64_t bt, int64_t bn) {
  const int64_t B = DH.size(1), P = DH.size(2);
  if (bn) {
    Tensor dh = at_step(DH, t, bn), dR1 = at_step(dR, t + 1, bn), d = at_step(dout, t, bn);
    if (noise.rec) {
      at::add_out(dh, d, at::mm(dR1, w_hh).mul_(noise.rec->narrow(0, 0, bn)));
    } else {
      at::addmm_out(dh, d, dR1, w_hh);
    }
    if (noise.k_h) dh.addcmul_(at_step(*noise.k_h, t + 1, bn), at_step(DH, t + 1, bn));
  }
  S* dh = ptr<S>(DH) + t * B * P;
  const S* d = ptr<S>(dout) + t * B * P;
  const S* dhn = ptr<S>(dh_n);
  for (int64_t j = bn * P; j < bt * P; ++j) dh[j] = d[j] + dhn[j];
}

// ---- LSTM (ln_lstm.py) ----------------------------------------------------------------------

template <typename S>
void lstm_forward_impl(const Steps& steps, const Tensor& Z, const Tensor& h0, const Tensor& c0,
                       const Tensor& w_hh, const Tensor& g_hh, const Tensor& g_c,
                       const Tensor& b_c, const std::optional<Tensor>& w_hr, const Noise& noise,
                       const Tensor& out, const Tensor& h_n, const Tensor& c_n, const Tensor& R,
                       const Tensor& rs_r, const Tensor& C, const Tensor& Ch, const Tensor& rs_c) {
  const int64_t B = Z.size(1), H = C.size(2), P = out.size(2), G = 4 * H;
  Tensor M = w_hr ? at::zeros({B, H}, Z.options()) : Tensor();  // m_t, before W_hr
  const S *ghh = ptr<S>(g_hh), *gc = ptr<S>(g_c), *bc = ptr<S>(b_c);
  for (const auto& [t, bt, bn] : steps) {
    Tensor prev = t ? at_step(out, t - 1, bt) : h0.narrow(0, 0, bt);
    recurrent_ln<S>(R, rs_r, prev, w_hh, noise.rec, t, bt);
    S* m_base = w_hr ? ptr<S>(M) : ptr<S>(out) + t * B * P;
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        S* z = ptr<S>(Z) + row * G;
        const S* c_prev = t ? ptr<S>(C) + (row - B) * H : ptr<S>(c0) + b * H;
        S* c = ptr<S>(C) + row * H;
        S* ch = ptr<S>(Ch) + row * H;
        lstm_gates(z, ptr<S>(R) + row * G, ghh, c_prev, c, H);  // gates, c~_t
        for (int64_t j = 0; j < H; ++j) ch[j] = c[j];
        ptr<S>(rs_c)[row] = normalise(ch, H);  // c^_t = LN(c~_t)
        lstm_output(z + 3 * H, ch, gc, bc, m_base + b * H, H);  // m_t = o tanh(y_t)
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

void ln_lstm_forward(const Steps& steps, Tensor Z, const Tensor& h0, const Tensor& c0,
                     const Tensor& w_hh, const Tensor& g_hh, const Tensor& g_c, const Tensor& b_c,
                     const std::optional<Tensor>& w_hr, const std::optional<Tensor>& rec,
                     const std::optional<Tensor>& k_h, const std::optional<Tensor>& k_c,
                     Tensor out, Tensor h_n, Tensor c_n, Tensor R, Tensor rs_r, Tensor C,
                     Tensor Ch, Tensor rs_c) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor gh = g_hh.contiguous(), gc = g_c.contiguous(), bc = b_c.contiguous();
  const Noise noise{rec, k_h, k_c};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "ln_lstm_forward", [&] {
    lstm_forward_impl<scalar_t>(steps, Z, h0, c0, w_hh, gh, gc, bc, w_hr, noise, out, h_n, c_n,
                                R, rs_r, C, Ch, rs_c);
  });
}

template <typename S>
void lstm_backward_impl(const Steps& steps, const Tensor& Z, const Tensor& R, const Tensor& rs_r,
                        const Tensor& C, const Tensor& Ch, const Tensor& rs_c, const Tensor& c0,
                        const Tensor& w_hh, const Tensor& g_hh, const Tensor& g_c,
                        const Tensor& b_c, const std::optional<Tensor>& w_hr, const Noise& noise,
                        const Tensor& dout, const Tensor& dh_n, const std::optional<Tensor>& dC,
                        const Tensor& dc, const Tensor& dZ, const Tensor& dR, const Tensor& DY,
                        const Tensor& DH) {
  const int64_t B = Z.size(1), H = C.size(2), G = 4 * H;
  const S *ghh = ptr<S>(g_hh), *gc = ptr<S>(g_c), *bc = ptr<S>(b_c), *dCp = optr<S>(dC);
  const S* kcp = optr<S>(noise.k_c);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    recurrent_grad<S>(DH, dR, w_hh, noise, dout, dh_n, t, bt, bn);  // dh_t
    Tensor dh = at_step(DH, t, bt);  // dh~_t = (1 - k_h) dh_t, dm_t = dh~_t W_hr or dh~_t
    if (noise.k_h) dh = dh * (1 - at_step(*noise.k_h, t, bt));
    const Tensor dm = w_hr ? at::mm(dh, *w_hr) : dh.contiguous();
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      std::vector<S> d_c(H);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        const S *z = ptr<S>(Z) + row * G, *ch = ptr<S>(Ch) + row * H, *dmb = ptr<S>(dm) + b * H;
        const S *i = z, *f = z + H, *g = z + 2 * H, *o = z + 3 * H;
        const S* kc = kcp ? kcp + row * H : nullptr;
        S* dz = ptr<S>(dZ) + row * G;
        S* dy = ptr<S>(DY) + row * H;
        S* dcb = ptr<S>(dc) + b * H;
        if (dCp) {
          for (int64_t j = 0; j < H; ++j) dcb[j] += dCp[row * H + j];  // c_t's own gradient
        }
        lstm_output_grad(dmb, o, ch, gc, bc, dz + 3 * H, dy, H);  // dz_o, dy_t
        for (int64_t j = 0; j < H; ++j) d_c[j] = kc ? (S(1) - kc[j]) * dcb[j] : dcb[j];
        normalise_backward(gc, dy, ch, ptr<S>(rs_c)[row], d_c.data(), H, true);  // dc~_t
        const S* c_prev = t ? ptr<S>(C) + (row - B) * H : ptr<S>(c0) + b * H;
        for (int64_t j = 0; j < H; ++j) {
          dz[j] = d_c[j] * g[j] * i[j] * (S(1) - i[j]);                  // dz_i
          dz[H + j] = d_c[j] * c_prev[j] * f[j] * (S(1) - f[j]);         // dz_f
          dz[2 * H + j] = d_c[j] * i[j] * (S(1) - g[j] * g[j]);          // dz_g
          dcb[j] = (kc ? kc[j] * dcb[j] : S(0)) + d_c[j] * f[j];         // dc_{t-1}
        }
        const S* r = ptr<S>(R) + row * G;  // dR_t   (through r^_t = LN(r_t))
        normalise_backward(ghh, dz, r, ptr<S>(rs_r)[row], ptr<S>(dR) + row * G, G, false);
      }
    });
  }
}

void ln_lstm_backward(const Steps& steps, const Tensor& Z, const Tensor& R, const Tensor& rs_r,
                      const Tensor& C, const Tensor& Ch, const Tensor& rs_c, const Tensor& c0,
                      const Tensor& w_hh, const Tensor& g_hh, const Tensor& g_c,
                      const Tensor& b_c, const std::optional<Tensor>& w_hr,
                      const std::optional<Tensor>& rec, const std::optional<Tensor>& k_h,
                      const std::optional<Tensor>& k_c, const Tensor& dout, const Tensor& dh_n,
                      const std::optional<Tensor>& dC, Tensor dc, Tensor dZ, Tensor dR, Tensor DY,
                      Tensor DH) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor gh = g_hh.contiguous(), gc = g_c.contiguous(), bc = b_c.contiguous();
  const Noise noise{rec, k_h, k_c};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "ln_lstm_backward", [&] {
    lstm_backward_impl<scalar_t>(steps, Z, R, rs_r, C, Ch, rs_c, c0, w_hh, gh, gc, bc, w_hr,
                                 noise, dout, dh_n, dC, dc, dZ, dR, DY, DH);
  });
}

// ---- GRU (ln_gru.py) ------------------------------------------------------------------------

template <typename S>
void gru_forward_impl(const Steps& steps, const Tensor& A, const Tensor& h0, const Tensor& w_hh,
                      const Tensor& g_hh, const std::optional<Tensor>& b_hh, const Noise& noise,
                      const Tensor& out, const Tensor& h_n, const Tensor& R, const Tensor& rs_r,
                      const Tensor& U) {
  const int64_t B = A.size(1), H = out.size(2), G = 3 * H;
  const S *ghh = ptr<S>(g_hh), *bhh = optr<S>(b_hh);
  for (const auto& [t, bt, bn] : steps) {
    Tensor prev = t ? at_step(out, t - 1, bt) : h0.narrow(0, 0, bt);
    recurrent_ln<S>(R, rs_r, prev, w_hh, noise.rec, t, bt);
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        S* a = ptr<S>(A) + row * G;
        S* u = ptr<S>(U) + row * G;
        const S* r_hat = ptr<S>(R) + row * G;
        for (int64_t j = 0; j < G; ++j) u[j] = ghh[j] * r_hat[j];  // u_t = gamma_hh r^_t + b_hh
        if (bhh) {
          for (int64_t j = 0; j < G; ++j) u[j] += bhh[j];
        }
        const S* hp = t ? ptr<S>(out) + (row - B) * H : ptr<S>(h0) + b * H;
        gru_gates(a, u, hp, ptr<S>(out) + row * H, H);  // r, z, n, h~_t
      }
    });
    zone(out, prev, noise.k_h, t, bt);  // h_t
    if (bn < bt) h_n.narrow(0, bn, bt - bn).copy_(out[t].narrow(0, bn, bt - bn));
  }
}

void ln_gru_forward(const Steps& steps, Tensor A, const Tensor& h0, const Tensor& w_hh,
                    const Tensor& g_hh, const std::optional<Tensor>& b_hh,
                    const std::optional<Tensor>& rec, const std::optional<Tensor>& k, Tensor out,
                    Tensor h_n, Tensor R, Tensor rs_r, Tensor U) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor gh = g_hh.contiguous();
  const std::optional<Tensor> bh = b_hh ? std::optional<Tensor>(b_hh->contiguous()) : b_hh;
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "ln_gru_forward", [&] {
    gru_forward_impl<scalar_t>(steps, A, h0, w_hh, gh, bh, noise, out, h_n, R, rs_r, U);
  });
}

template <typename S>
void gru_backward_impl(const Steps& steps, const Tensor& A, const Tensor& U, const Tensor& R,
                       const Tensor& rs_r, const Tensor& out, const Tensor& h0,
                       const Tensor& w_hh, const Tensor& g_hh, const Noise& noise,
                       const Tensor& dout, const Tensor& dh_n, const Tensor& dA, const Tensor& dU,
                       const Tensor& dR, const Tensor& DH) {
  const int64_t B = A.size(1), H = out.size(2), G = 3 * H;
  const S *ghh = ptr<S>(g_hh), *kp = optr<S>(noise.k_h);
  const Noise rec_only{noise.rec, std::nullopt, std::nullopt};  // zk below, not k_h
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    recurrent_grad<S>(DH, dR, w_hh, rec_only, dout, dh_n, t, bt, bn);
    rows(bt, G, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        S* dh = ptr<S>(DH) + row * H;
        if (b < bn) {  // through h_{t+1} = ... + zk h_t, zk = k + (1 - k) z
          const S* z1 = ptr<S>(A) + (row + B) * G + H;
          const S* dh1 = ptr<S>(DH) + (row + B) * H;
          const S* k1 = kp ? kp + (row + B) * H : nullptr;
          for (int64_t j = 0; j < H; ++j) {
            dh[j] += (k1 ? k1[j] + (S(1) - k1[j]) * z1[j] : z1[j]) * dh1[j];
          }
        }
        const S *a = ptr<S>(A) + row * G, *u = ptr<S>(U) + row * G;
        const S* hp = t ? ptr<S>(out) + (row - B) * H : ptr<S>(h0) + b * H;
        const S* k = kp ? kp + row * H : nullptr;
        S *da = ptr<S>(dA) + row * G, *du = ptr<S>(dU) + row * G;
        for (int64_t j = 0; j < H; ++j) {
          const S r = a[j], z = a[H + j], n = a[2 * H + j];
          const S dht = k ? (S(1) - k[j]) * dh[j] : dh[j];      // dh~_t
          const S k_n = dht * (S(1) - z) * (S(1) - n * n);       // dh~_t K_n
          da[j] = du[j] = k_n * u[2 * H + j] * r * (S(1) - r);  // (through r)
          da[H + j] = du[H + j] = dht * (hp[j] - n) * z * (S(1) - z);  // (through z)
          da[2 * H + j] = k_n;                                   // (through n)
          du[2 * H + j] = k_n * r;
        }
        const S* r_hat = ptr<S>(R) + row * G;  // dR_t   (through r^_t = LN(r_t))
        normalise_backward(ghh, du, r_hat, ptr<S>(rs_r)[row], ptr<S>(dR) + row * G, G, false);
      }
    });
  }
}

void ln_gru_backward(const Steps& steps, const Tensor& A, const Tensor& U, const Tensor& R,
                     const Tensor& rs_r, const Tensor& out, const Tensor& h0, const Tensor& w_hh,
                     const Tensor& g_hh, const std::optional<Tensor>& rec,
                     const std::optional<Tensor>& k, const Tensor& dout, const Tensor& dh_n,
                     Tensor dA, Tensor dU, Tensor dR, Tensor DH) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor gh = g_hh.contiguous();
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "ln_gru_backward", [&] {
    gru_backward_impl<scalar_t>(steps, A, U, R, rs_r, out, h0, w_hh, gh, noise, dout, dh_n, dA,
                                dU, dR, DH);
  });
}

// ---- Elman RNN (ln_rnn.py) ------------------------------------------------------------------

template <typename S>
void rnn_forward_impl(const Steps& steps, const Tensor& Z, const Tensor& h0, const Tensor& w_hh,
                      const Tensor& g_hh, const Noise& noise, bool relu, const Tensor& h_n,
                      const Tensor& R, const Tensor& rs_r, const std::optional<Tensor>& h_tilde) {
  const int64_t B = Z.size(1), H = Z.size(2);
  const S* ghh = ptr<S>(g_hh);
  for (const auto& [t, bt, bn] : steps) {
    Tensor prev = t ? at_step(Z, t - 1, bt) : h0.narrow(0, 0, bt);
    recurrent_ln<S>(R, rs_r, prev, w_hh, noise.rec, t, bt);
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        rnn_act(ptr<S>(Z) + row * H, ptr<S>(R) + row * H, ghh, H, relu);  // h~_t
      }
    });
    if (noise.k_h) {  // h_t = k h_{t-1} + (1 - k) h~_t, h~_t kept for the backward
      at_step(*h_tilde, t, bt).copy_(at_step(Z, t, bt));
      zone(Z, prev, noise.k_h, t, bt);
    }
    if (bn < bt) h_n.narrow(0, bn, bt - bn).copy_(Z[t].narrow(0, bn, bt - bn));
  }
}

void ln_rnn_forward(const Steps& steps, Tensor Z, const Tensor& h0, const Tensor& w_hh,
                    const Tensor& g_hh, const std::optional<Tensor>& rec,
                    const std::optional<Tensor>& k, bool relu, Tensor h_n, Tensor R, Tensor rs_r,
                    const std::optional<Tensor>& h_tilde) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor gh = g_hh.contiguous();
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "ln_rnn_forward", [&] {
    rnn_forward_impl<scalar_t>(steps, Z, h0, w_hh, gh, noise, relu, h_n, R, rs_r, h_tilde);
  });
}

template <typename S>
void rnn_backward_impl(const Steps& steps, const Tensor& D, const Tensor& R, const Tensor& rs_r,
                       const Tensor& w_hh, const Tensor& g_hh, const Noise& noise,
                       const Tensor& dout, const Tensor& dh_n, const Tensor& dZ, const Tensor& dR,
                       const Tensor& DH) {
  const int64_t B = D.size(1), H = D.size(2);
  const S* ghh = ptr<S>(g_hh);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    recurrent_grad<S>(DH, dR, w_hh, noise, dout, dh_n, t, bt, bn);  // dh_t
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * B + b;
        S* dz = ptr<S>(dZ) + row * H;
        const S *Dr = ptr<S>(D) + row * H, *dh = ptr<S>(DH) + row * H;
        for (int64_t j = 0; j < H; ++j) dz[j] = dh[j] * Dr[j];  // dz_t = dh_t D_t
        normalise_backward(ghh, dz, ptr<S>(R) + row * H, ptr<S>(rs_r)[row],
                           ptr<S>(dR) + row * H, H, false);  // dR_t   (through r^_t)
      }
    });
  }
}

void ln_rnn_backward(const Steps& steps, const Tensor& D, const Tensor& R, const Tensor& rs_r,
                     const Tensor& w_hh, const Tensor& g_hh, const std::optional<Tensor>& rec,
                     const std::optional<Tensor>& k, const Tensor& dout, const Tensor& dh_n,
                     Tensor dZ, Tensor dR, Tensor DH) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor gh = g_hh.contiguous();
  const Noise noise{rec, k, std::nullopt};
  AT_DISPATCH_FLOATING_TYPES(D.scalar_type(), "ln_rnn_backward", [&] {
    rnn_backward_impl<scalar_t>(steps, D.contiguous(), R, rs_r, w_hh, gh, noise, dout, dh_n, dZ,
                                dR, DH);
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
