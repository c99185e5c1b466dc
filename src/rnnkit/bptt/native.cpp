// The time loops of the LSTM and GRU kernels in C++ (CPU tensors only).
//
// Same math, same buffers and same order of operations as the Python loops in lstm.py and
// gru.py, which stay as the reference and the path for CUDA: the kernels prepare every
// buffer and every per-step view in Python, and only the loop over time runs here. What this
// saves is the interpreter: a Python-level op costs 1.2-3.7 us of dispatch (PERF-NOTES.md),
// and a step is 6-8 of them. Here a step is its GEMM, one or two ATen sigmoids (vectorised)
// and plain loops for the arithmetic between them, which the compiler vectorises.
//
// Symbols follow the Python kernels: z the LSTM's (B, 4H) gate row [i, f, s_g, o] (s_g =
// sigmoid(2 z_g), so g = 2 s_g - 1), c' = 2c, h/2 carried between steps; the GRU's q = (h+1)/2.

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/extension.h>

#include <optional>
#include <vector>

namespace {

using at::Tensor;
using Steps = std::vector<std::tuple<int64_t, int64_t, int64_t>>;  // (t, b_t, b_{t+1})

Tensor onednn_linear(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                                     c10::string_view, c10::List<std::optional<c10::Scalar>>,
                                     std::optional<c10::string_view>)>();
  return op.call(x, w, b, "none", c10::List<std::optional<c10::Scalar>>(), "");
}

// z += x W^T, W (N, K) as torch.nn stores it; oneDNN when `onednn` (W may be prepacked).
void addmm_(Tensor& z, const Tensor& x, const Tensor& w, bool onednn) {
  if (onednn) {
    z.add_(onednn_linear(x, w, std::nullopt));
  } else {
    z.addmm_(x, w.t());
  }
}

constexpr int64_t kMinWork = 4096;  // elements per thread in a step's fused pointwise work

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

void check_contiguous(const char* fn, std::initializer_list<const Tensor*> buffers) {
  for (const Tensor* x : buffers) {
    TORCH_CHECK(x->is_contiguous(), fn, ": every buffer must be contiguous");
  }
}

template <typename S>
S* ptr(const Tensor& x) {
  return x.data_ptr<S>();
}

// ---------------------------------------------------------------------------------------
// LSTM forward over the steps of one chunk of pre-activations Zc (T_c, B, 4H): for each step
//   z = sigmoid(z + h_{t-1} W^T)         (W = W_hh for h_0, 2 W_hh after: h/2 is carried)
//   c'_t = f c'_{t-1} + 4 i s_g - 2 i    (= 2 (f c_{t-1} + i g))
//   h_t / 2 = o sigmoid(c'_t) - o / 2    (= o tanh(c_t) / 2)
// out (T, B, H) receives h_t / 2; C is (T, B, H), or two (B, H) buffers used in turn (ring,
// when nothing is saved); c_prev is c'_{-1} = 2 c_0.
template <typename S>
void lstm_forward_impl(const Steps& steps, const Tensor& Zc, const Tensor& h0,
                       const Tensor& c_prev, const Tensor& out, const Tensor& C, bool ring,
                       const Tensor& w_first, const Tensor& w_rest, bool onednn, Tensor& h_n,
                       Tensor& c_n) {
  const int64_t B = out.size(1), H = out.size(2), BH = B * H, G = 4 * H;
  const int64_t t0 = std::get<0>(steps.front());
  S* Zp = ptr<S>(Zc);
  S* outp = ptr<S>(out);
  S* Cp = ptr<S>(C);
  const S* c0p = ptr<S>(c_prev);
  for (const auto& [t, bt, bn] : steps) {
    Tensor z = Zc[t - t0].narrow(0, 0, bt);
    Tensor h_prev = t ? out[t - 1].narrow(0, 0, bt) : h0;
    addmm_(z, h_prev, t ? w_rest : w_first, onednn);
    const int64_t tc = ring ? t % 2 : t, tp = ring ? (t + 1) % 2 : t - 1;
    S* zt = Zp + (t - t0) * B * G;
    const S* pc = t ? Cp + tp * BH : c0p;
    S* ct = Cp + tc * BH;
    S* ht = outp + t * BH;
    Tensor c_rows = C[tc], h_rows = out[t];
    // All the step's pointwise work, per range of rows (one parallel region, not four).
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      z.narrow(0, b0, b1 - b0).sigmoid_();  // [i, f, s_g, o]
      for (int64_t b = b0; b < b1; ++b) {
        const S* zb = zt + b * G;
        const S* pcb = pc + b * H;
        S* cb = ct + b * H;
        for (int64_t j = 0; j < H; ++j) {
          const S i = zb[j], f = zb[H + j], s_g = zb[2 * H + j];
          cb[j] = f * pcb[j] + S(4) * i * s_g - S(2) * i;
        }
      }
      Tensor hr = h_rows.narrow(0, b0, b1 - b0);
      at::sigmoid_out(hr, c_rows.narrow(0, b0, b1 - b0));  // s_c = sigmoid(c'_t)
      for (int64_t b = b0; b < b1; ++b) {
        const S* o = zt + b * G + 3 * H;
        S* hb = ht + b * H;
        for (int64_t j = 0; j < H; ++j) {
          hb[j] = o[j] * hb[j] - S(0.5) * o[j];
        }
      }
    });
    if (bn < bt) {  // rows [bn, bt) end here
      h_n.narrow(0, bn, bt - bn).copy_(h_rows.narrow(0, bn, bt - bn));
      c_n.narrow(0, bn, bt - bn).copy_(c_rows.narrow(0, bn, bt - bn));
    }
  }
}

void lstm_forward(const Steps& steps, const Tensor& Zc, const Tensor& h0, const Tensor& c_prev,
                  const Tensor& out, const Tensor& C, bool ring, const Tensor& w_first,
                  const Tensor& w_rest, bool onednn, Tensor h_n, Tensor c_n) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("lstm_forward", {&Zc, &h0, &c_prev, &out, &C});
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "lstm_forward", [&] {
    lstm_forward_impl<scalar_t>(steps, Zc, h0, c_prev, out, C, ring, w_first, w_rest, onednn, h_n,
                                c_n);
  });
}

// ---------------------------------------------------------------------------------------
// LSTM backward, reverse time. The K factors of lstm.py are formed in the loop from the
// saved gates and cells instead of being precomputed into (T, B, 4H) buffers:
//   dh_t = dout_t + dz_{t+1} W_hh             (rows still running at t+1)
//   dh_t = dout_t + dL/dh_n                   (rows [b_{t+1}, b_t), which end at t)
//   tanh c_t = 2 s_c - 1                      (s_c = sigmoid(c'_t), one ATen call beforehand)
//   dc_t += dh_t o (1 - tanh^2 c_t)
//   dz_o = dh_t tanh(c_t) o (1 - o)           dz_i = dc_t g i (1 - i)
//   dz_f = dc_t c_{t-1} f (1 - f)             dz_g = dc_t i (1 - g^2)
//   dc_{t-1} = dc_t f
template <typename S>
void lstm_backward_impl(const Steps& steps, const Tensor& Z, const Tensor& s_c, const Tensor& C,
                        const Tensor& c0, const Tensor& dout, const Tensor& dh_n, Tensor& dZ,
                        Tensor& dc, Tensor& dh, const Tensor& w_hh_t, bool onednn,
                        const std::optional<Tensor>& norms) {
  const int64_t B = Z.size(1), H = dc.size(1), G = 4 * H;
  const S* Zp = ptr<S>(Z);
  const S* scp = ptr<S>(s_c);
  const S* Cp = ptr<S>(C);
  const S* c0p = ptr<S>(c0);
  const S* dop = ptr<S>(dout);
  const S* dhnp = ptr<S>(dh_n);
  S* dZp = ptr<S>(dZ);
  S* dcp = ptr<S>(dc);
  S* dhp = ptr<S>(dh);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    Tensor rec;  // dz_{t+1} W_hh for rows [0, bn)
    if (bn) {
      Tensor dz1 = dZ[t + 1].narrow(0, 0, bn);
      if (onednn) {
        rec = onednn_linear(dz1, w_hh_t, std::nullopt);
      } else {
        rec = dh.narrow(0, 0, bn);
        at::mm_out(rec, dz1, w_hh_t.t());
      }
    }
    const S* recp = bn ? ptr<S>(rec) : nullptr;
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;  // row of (T, B, .) tensors
        S* dhr = dhp + b * H;
        const S* dor = dop + r * H;
        const S* add = b < bn ? recp + b * H : dhnp + b * H;
        for (int64_t j = 0; j < H; ++j) dhr[j] = dor[j] + add[j];
        const S* z = Zp + r * G;
        const S* sc = scp + r * H;
        const S* cprev = t ? Cp + (r - B) * H : c0p + b * H;
        const S cscale = t ? S(0.5) : S(1);  // C holds c' = 2c; c0 is c
        S* dzr = dZp + r * G;
        S* dcr = dcp + b * H;
        for (int64_t j = 0; j < H; ++j) {
          const S i = z[j], f = z[H + j], g = z[2 * H + j], o = z[3 * H + j];
          const S tc = S(2) * sc[j] - S(1);
          const S d_h = dhr[j];
          const S d_c = dcr[j] + d_h * (o - o * tc * tc);
          dzr[j] = d_c * (g * (i - i * i));
          dzr[H + j] = d_c * (cscale * cprev[j] * (f - f * f));
          dzr[2 * H + j] = d_c * (i - i * g * g);
          dzr[3 * H + j] = d_h * (tc * (o - o * o));
          dcr[j] = d_c * f;
        }
      }
    });
    if (norms) {
      Tensor n = (*norms)[t];
      at::linalg_vector_norm_out(n, dh.narrow(0, 0, bt), 2);
    }
  }
}

void lstm_backward(const Steps& steps, const Tensor& Z, const Tensor& s_c, const Tensor& C,
                   const Tensor& c0, const Tensor& dout, const Tensor& dh_n, Tensor dZ, Tensor dc,
                   Tensor dh, const Tensor& w_hh_t, bool onednn,
                   const std::optional<Tensor>& norms) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("lstm_backward", {&Z, &s_c, &C, &c0, &dout, &dh_n, &dZ, &dc, &dh});
  AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "lstm_backward", [&] {
    lstm_backward_impl<scalar_t>(steps, Z, s_c, C, c0, dout, dh_n, dZ, dc, dh, w_hh_t, onednn,
                                 norms);
  });
}

// ---------------------------------------------------------------------------------------
// GRU forward, carrying q = (h + 1) / 2: for each step
//   u = q_{t-1} W^T + b_u                     (into us[k], or a new tensor from oneDNN)
//   [r, z] = sigmoid(a_rz + u_rz)
//   s_n = sigmoid(a_n + r u_n)                (= (n + 1) / 2)
//   q_t = s_n + z (q_{t-1} - s_n)
// Returns the steps' u where oneDNN gave a new tensor (empty otherwise), for the backward.
template <typename S>
std::vector<Tensor> gru_forward_impl(const Steps& steps, const std::vector<Tensor>& as,
                                     const std::vector<Tensor>& us,
                                     const std::vector<Tensor>& prev,
                                     const std::vector<Tensor>& h_dst, const Tensor& w,
                                     const std::optional<Tensor>& b_u, bool onednn, bool save,
                                     Tensor& h_n) {
  const int64_t H = h_n.size(1);
  std::vector<Tensor> fresh;
  for (size_t k = 0; k < steps.size(); ++k) {
    const auto [t, bt, bn] = steps[k];
    Tensor u;
    if (onednn) {
      u = onednn_linear(prev[k], w, b_u);
      if (save) fresh.push_back(u);
    } else {
      u = us[k];
      if (b_u) {
        at::addmm_out(u, *b_u, prev[k], w.t());
      } else {
        at::mm_out(u, prev[k], w.t());
      }
    }
    const Tensor& a = as[k];
    const Tensor& h = h_dst[k];
    const int64_t sa = a.stride(0), su = u.stride(0), sh = h.stride(0), sp = prev[k].stride(0);
    S* ap = ptr<S>(a);
    const S* up = ptr<S>(u);
    S* hp = ptr<S>(h);
    const S* pp = ptr<S>(prev[k]);
    // All the step's pointwise work, per range of rows (one parallel region, not five).
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        S* ar = ap + b * sa;
        const S* ur = up + b * su;
        for (int64_t j = 0; j < 2 * H; ++j) ar[j] += ur[j];
      }
      Tensor ab = a.narrow(0, b0, b1 - b0);
      ab.narrow(1, 0, 2 * H).sigmoid_();  // r, z
      for (int64_t b = b0; b < b1; ++b) {
        S* ar = ap + b * sa;
        const S* ur = up + b * su;
        for (int64_t j = 0; j < H; ++j) ar[2 * H + j] += ar[j] * ur[2 * H + j];
      }
      ab.narrow(1, 2 * H, H).sigmoid_();  // s_n = (n + 1) / 2
      for (int64_t b = b0; b < b1; ++b) {
        const S* ar = ap + b * sa;
        const S* q = pp + b * sp;
        S* hr = hp + b * sh;
        for (int64_t j = 0; j < H; ++j) {
          const S s_n = ar[2 * H + j];
          hr[j] = s_n + ar[H + j] * (q[j] - s_n);
        }
      }
    });
    if (bn < bt) {
      h_n.narrow(0, bn, bt - bn).copy_(h.narrow(0, bn, bt - bn));
    }
  }
  return fresh;
}

std::vector<Tensor> gru_forward(const Steps& steps, const std::vector<Tensor>& as,
                                const std::vector<Tensor>& us, const std::vector<Tensor>& prev,
                                const std::vector<Tensor>& h_dst, const Tensor& w,
                                const std::optional<Tensor>& b_u, bool onednn, bool save,
                                Tensor h_n) {
  at::AutoDispatchBelowADInplaceOrView guard;
  std::vector<Tensor> fresh;
  AT_DISPATCH_FLOATING_TYPES(h_n.scalar_type(), "gru_forward", [&] {
    fresh = gru_forward_impl<scalar_t>(steps, as, us, prev, h_dst, w, b_u, onednn, save, h_n);
  });
  return fresh;
}

// ---------------------------------------------------------------------------------------
// GRU backward, reverse time, with K = [K_r, K_z, K_u] precomputed (see gru.py):
//   dh_t = dout_t + z_{t+1} dh_{t+1} + du_{t+1} W_hh     (rows still running at t+1)
//   dh_t = dout_t + dL/dh_n                             (rows [b_{t+1}, b_t), ending at t)
//   du_t = dh_t K
template <typename S>
void gru_backward_impl(const Steps& steps, const Tensor& A, const Tensor& K, const Tensor& dout,
                       const Tensor& dh_n, Tensor& dU, Tensor& DH, const Tensor& w_hh_t,
                       bool onednn) {
  const int64_t B = A.size(1), H = DH.size(2), G = 3 * H;
  const S* Ap = ptr<S>(A);
  const S* Kp = ptr<S>(K);
  const S* dop = ptr<S>(dout);
  const S* dhnp = ptr<S>(dh_n);
  S* dUp = ptr<S>(dU);
  S* DHp = ptr<S>(DH);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto [t, bt, bn] = *it;
    if (bn) {  // DH_t[:bn] = dU_{t+1}[:bn] W_hh; the other terms in the loop
      Tensor d = DH[t].narrow(0, 0, bn);
      Tensor du1 = dU[t + 1].narrow(0, 0, bn);
      if (onednn) {
        d.copy_(onednn_linear(du1, w_hh_t, std::nullopt));
      } else {
        at::mm_out(d, du1, w_hh_t.t());
      }
    }
    rows(bt, H, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * B + b;
        S* dh = DHp + r * H;
        const S* d = dop + r * H;
        if (b < bn) {
          const S* z1 = Ap + (r + B) * G + H;  // z_{t+1}
          const S* dh1 = DHp + (r + B) * H;
          for (int64_t j = 0; j < H; ++j) dh[j] += d[j] + z1[j] * dh1[j];
        } else {
          const S* dhn = dhnp + b * H;
          for (int64_t j = 0; j < H; ++j) dh[j] = d[j] + dhn[j];
        }
        const S* k = Kp + r * G;
        S* du = dUp + r * G;
        for (int64_t j = 0; j < H; ++j) {
          du[j] = dh[j] * k[j];
          du[H + j] = dh[j] * k[H + j];
          du[2 * H + j] = dh[j] * k[2 * H + j];
        }
      }
    });
  }
}

void gru_backward(const Steps& steps, const Tensor& A, const Tensor& K, const Tensor& dout,
                  const Tensor& dh_n, Tensor dU, Tensor DH, const Tensor& w_hh_t, bool onednn) {
  at::AutoDispatchBelowADInplaceOrView guard;
  check_contiguous("gru_backward", {&A, &K, &dout, &dh_n, &dU, &DH});
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gru_backward", [&] {
    gru_backward_impl<scalar_t>(steps, A, K, dout, dh_n, dU, DH, w_hh_t, onednn);
  });
}

// ---------------------------------------------------------------------------------------
// Elman RNN forward, in place over the projections Z (T, B, H) (see rnn.py):
//   tanh: z'_t += s_{t-1} W'^T; s_t = sigmoid(z'_t)    (s = (h + 1) / 2, W' = 4 W_hh)
//   relu: z_t += h_{t-1} W_hh^T; h_t = max(z_t, 0)
void rnn_forward(const Steps& steps, Tensor Z, const Tensor& h0, const Tensor& w_first,
                 const Tensor& w_rest, bool onednn, bool relu) {
  at::AutoDispatchBelowADInplaceOrView guard;
  for (const auto& [t, bt, bn] : steps) {
    Tensor z = Z[t].narrow(0, 0, bt);
    addmm_(z, t ? Z[t - 1].narrow(0, 0, bt) : h0, t ? w_rest : w_first, onednn);
    if (relu) {
      z.clamp_min_(0);
    } else {
      z.sigmoid_();
    }
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's RNN, LSTM and GRU time loops (see native.cpp)";
  m.def("rnn_forward", &rnn_forward);
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
}
