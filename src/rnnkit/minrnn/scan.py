"""The parallel scan of h_t = a_t * h_{t-1} + b_t over time, in log space and in chunks.

    T: time (dim 0 of every tensor here), C: chunk length, *: any trailing shape (B, H),
    N: the trailing shape flattened (B*H); the code works on (T, N)

For 0 < a_t <= 1 and b_t > 0 given as log a, log b (T, *), Heinsen (2023) solves the whole
recurrence with two prefix operations:

    a*_t = sum_{s<=t} log a_s                                  (cumsum)
    h_t  = exp(a*_t) * h_{-1} + exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s))

The second term is sum_{s<=t} (a_{s+1} ... a_t) b_s, computed without ever forming a product
of many a's outside log space. h_{-1} (`h0`) enters linearly rather than as a prepended
log h_{-1}, so it may be zero, negative or anything else: no positivity needed, and no
log 0 (whose gradient would be NaN) for the usual zero start.

The time axis is cut into chunks of C steps; each chunk is solved as above with the previous
chunk's last h as its h_{-1}. That bounds the temporaries of a call to O(C * N), and keeps
|a*| small (it grows with the chunk, and with it the float32 rounding of a*_t - a*_s).
Inside a chunk both prefix sums are one small GEMM with the triangular ones matrix
tri (C, C), which this CPU runs 3-7x faster than torch.cumsum (as fast at N = 64) and
15-60x faster than torch.logcumsumexp (docs/minrnn.md, "Inside a chunk"):

    a*                  = tri @ log a                               (C, N)
    x                   = log b - a*,   m = max over the chunk of x  (N)
    logcumsumexp(x)_t   = m + log((tri @ exp(x - m))_t)

exp(x - m) <= 1 cannot overflow. Where it would fall below the smallest normal float (x - m
below about -86 in float32: a chunk whose a's multiply to under e^-86, gates near 1), terms
would be lost, so that chunk steps through its C steps in linear space instead (exact).
`default_chunk_size` is the measured rule (docs/minrnn.md, "Chunk size").

The backward (`LogScan.backward`) is the same chunked scan run backwards in time. Tests:
gradcheck in float64, and agreement with autograd through `scan_loop`, the slow twin that
steps through the whole sequence in linear space.
"""

import math

import torch
from torch import Tensor

# Chunk length for `chunk_size=None`, measured in docs/minrnn.md ("Chunk size"): forward +
# backward of log_scan, T 1024..4096, 1 thread, C in 16..256. A chunk costs a fixed dozen
# ops (dispatch) plus 2C flops per element in its GEMMs, so small B * H wants long chunks and
# large B * H short ones: N = B*H = 64: C=64 3.3x faster than C=16; N = 512: C=64 or 32
# fastest; N = 2048 and 4096: C=16 fastest (1.07-1.35x over 64). From C=128 on, chunks whose
# a's multiply below e^-86 (mean -log a = 0.8 here) step instead, up to 4x slower. float32
# error grows with C: 2.6e-6 at C=16, 1.1e-5 at C=64 (gates from N(0, 1) pre-activations).
CHUNKS = ((512, 64), (1024, 32))  # (N at most, C); larger N: CHUNK_MIN (1024: interpolated)
CHUNK_MIN = 16
CHUNK_MAX = CHUNKS[0][1]


def default_chunk_size(T: int, N: int) -> int:
    """C for T steps of N = B*H independent recurrences (the measured rule in CHUNKS)."""
    C = next((c for n, c in CHUNKS if N <= n), CHUNK_MIN)
    return min(T, C)


def check_chunk_size(chunk_size) -> int | None:
    """None (the rule) or a positive int, else a TypeError/ValueError naming the value."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(
            f"chunk_size must be a positive int or None, got {type(chunk_size).__name__} "
            f"{chunk_size!r}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size}")
    return chunk_size


def _check(log_a: Tensor, log_b: Tensor, h0: Tensor | None) -> None:
    for name, t in (("log_a", log_a), ("log_b", log_b)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if log_a.dim() < 1 or log_a.shape[0] < 1 or log_a.shape != log_b.shape:
        raise ValueError(
            f"log_a and log_b must have the same shape (T, ...) with T >= 1, got "
            f"{tuple(log_a.shape)} and {tuple(log_b.shape)}"
        )
    if h0 is not None and (not isinstance(h0, Tensor) or h0.shape != log_a.shape[1:]):
        got = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
        raise ValueError(f"h0 must have shape {tuple(log_a.shape[1:])}, got {got}")


def _tiny_exponent(t: Tensor) -> float:
    """log of the smallest normal float of t's dtype, plus 1 (-86.3 float32, -707 float64)."""
    return math.log(torch.finfo(t.dtype).tiny) + 1


def _ones(C: int, like: Tensor, upper: bool = False) -> Tensor:
    """tri (C, C): lower-triangular ones (prefix sums), or upper (suffix sums)."""
    ones = torch.ones(C, C, dtype=like.dtype, device=like.device)
    return ones.triu_() if upper else ones.tril_()


def _forward_chunk(log_a: Tensor, log_b: Tensor, h0: Tensor | None) -> Tensor:
    """h (C, N) of one chunk from log a, log b (C, N) and the state before it, h0 (N)."""
    tri = _ones(log_a.shape[0], log_a)  # (C, C) lower
    a_star = tri @ log_a  # (C, N) log(a_0 ... a_t)
    x = log_b - a_star  # (C, N)
    m = x.amax(0)  # (N)
    x.sub_(m)  # <= 0
    if not bool(x.amin() >= _tiny_exponent(x)):  # a term would be lost (or NaN/-inf input)
        return _forward_steps(log_a, log_b, h0)
    h = (tri @ x.exp_()).log_().add_(m).add_(a_star).exp_()  # (C, N) the b part
    if h0 is not None:
        h.addcmul_(a_star.exp_(), h0)  # + (a_0 ... a_t) h_{-1}
    return h


def _forward_steps(log_a: Tensor, log_b: Tensor, h0: Tensor | None) -> Tensor:
    """The same chunk one step at a time, h_t = a_t h_{t-1} + b_t (the exact fallback)."""
    a, b = log_a.exp(), log_b.exp()  # (C, N)
    out = torch.empty_like(b)
    h = torch.zeros_like(b[0]) if h0 is None else h0
    for t in range(b.shape[0]):
        h = torch.addcmul(b[t], a[t], h, out=out[t])
    return out


def _backward_chunk(log_a_next: Tensor, dh: Tensor, delta_end: Tensor | None) -> Tensor:
    """delta (C, N), the total gradient of h over one chunk, from the gradient arriving on
    it, dh (C, N), log a_{t+1} (C, N) and delta at the first step after the chunk (N).

        delta_t = dh_t + a_{t+1} delta_{t+1}
                = exp(S_t) * (sum_{u>=t} exp(-S_u) dh_u + delta_end),  S_t = sum_{r>=t} log a_{r+1}

    computed as exp(S_t + m) * (tri_upper @ (exp(-S - m) dh))_t with m = max of -S: dh keeps
    its sign (a GEMM sums signed terms), so no log |dh| and no split into two scans.
    """
    tri = _ones(log_a_next.shape[0], log_a_next, upper=True)  # (C, C) upper
    S = tri @ log_a_next  # (C, N) suffix sums, <= 0
    m = S.amin(0).neg_()  # (N) max of -S
    y = S.neg().sub_(m)  # (C, N) -S - m <= 0
    if not bool(y.amin() >= _tiny_exponent(y)):
        return _backward_steps(log_a_next, dh, delta_end)
    delta = (tri @ y.exp_().mul_(dh)).mul_((S + m).exp_())  # (C, N)
    if delta_end is not None:
        delta.addcmul_(S.exp_(), delta_end)
    return delta


def _backward_steps(log_a_next: Tensor, dh: Tensor, delta_end: Tensor | None) -> Tensor:
    """The same chunk one step at a time, backwards (the exact fallback)."""
    a_next = log_a_next.exp()  # (C, N)
    out = torch.empty_like(dh)
    d = torch.zeros_like(dh[0]) if delta_end is None else delta_end
    for t in range(dh.shape[0] - 1, -1, -1):
        d = torch.addcmul(dh[t], a_next[t], d, out=out[t])
    return out


class LogScan(torch.autograd.Function):
    """h = log_scan(log a, log b, h0), with the backward written out (the forward in reverse).

    With dh_t the gradient arriving on h_t, the total gradient of h_t is

        delta_t = dh_t + a_{t+1} * delta_{t+1},   delta_{T-1} = dh_{T-1}

    the same kind of recurrence run backwards in time, solved chunk by chunk from the last
    (`_backward_chunk`). Then, through b_t = exp(log b_t) and a_t h_{t-1}:

        d log b_t = delta_t * b_t
        d log a_t = delta_t * a_t * h_{t-1}        (h_{-1} = h0)
        d h0      = delta_0 * a_0

    d log a from h_{t-1} directly: autograd through cumsum and logcumsumexp gets it as a
    difference of sums that grow with the chunk, and loses float32 digits there (6e-5 against
    2e-6 here at T = 300). Saved: log a, log b, h, each T*N, and h0. Differentiable once.
    """

    @staticmethod
    def forward(ctx, log_a: Tensor, log_b: Tensor, h0: Tensor | None, C: int) -> Tensor:
        shape, T = log_a.shape, log_a.shape[0]
        log_a, log_b = log_a.reshape(T, -1), log_b.reshape(T, -1)  # (T, N)
        h0 = None if h0 is None else h0.reshape(-1)  # (N)
        h = torch.empty_like(log_b)  # (T, N)
        prev = h0
        for s in range(0, T, C):
            e = min(s + C, T)
            h[s:e] = _forward_chunk(log_a[s:e], log_b[s:e], prev)
            prev = h[e - 1]
        ctx.save_for_backward(log_a, log_b, h, h0)
        ctx.C, ctx.shape = C, shape
        return h.view(shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh: Tensor):
        log_a, log_b, h, h0 = ctx.saved_tensors  # (T, N) each; h0 (N) or None
        T, C = log_a.shape[0], ctx.C
        dh = dh.reshape(T, -1)  # (T, N)
        d_log_a, d_log_b = torch.empty_like(log_a), torch.empty_like(log_b)  # (T, N)
        delta_end = None  # delta_T = 0
        for s in reversed(range(0, T, C)):
            e = min(s + C, T)
            log_a_next = log_a[s + 1 : e + 1]  # (C, N) log a_{t+1}; none after the end
            if e == T:
                log_a_next = torch.cat([log_a_next, torch.zeros_like(log_a[:1])])
            delta = _backward_chunk(log_a_next, dh[s:e], delta_end)  # (C, N)
            delta_end = delta[0]
            h_prev = h[s - 1 : e - 1] if s else torch.cat([_row(h0, h), h[: e - 1]])  # (C, N)
            torch.mul(delta, log_b[s:e].exp(), out=d_log_b[s:e])
            torch.mul(delta, log_a[s:e].exp(), out=d_log_a[s:e]).mul_(h_prev)
        d_h0 = None if h0 is None else (delta_end * log_a[0].exp()).view(ctx.shape[1:])
        return d_log_a.view(ctx.shape), d_log_b.view(ctx.shape), d_h0, None


def _row(h0: Tensor | None, like: Tensor) -> Tensor:
    """h_{-1} as a (1, N) row: h0, or zeros."""
    return torch.zeros_like(like[:1]) if h0 is None else h0.unsqueeze(0)


def log_scan(
    log_a: Tensor, log_b: Tensor, h0: Tensor | None = None, chunk_size: int | None = None
) -> Tensor:
    """h (T, *) with h_t = a_t * h_{t-1} + b_t, h_{-1} = h0 (zeros when None).

    log_a (<= 0), log_b: (T, *); h0: (*) in linear space, any sign; chunk_size: steps per
    chunk (None: `default_chunk_size(T, N)`). Differentiable once (`LogScan`'s backward).
    """
    _check(log_a, log_b, h0)
    T = log_a.shape[0]
    C = check_chunk_size(chunk_size) or default_chunk_size(T, log_a[0].numel())
    return LogScan.apply(log_a, log_b, h0, C)


def scan_loop(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """The reference: h_t = a_t * h_{t-1} + b_t one step at a time, in linear space."""
    h = torch.zeros_like(b[0]) if h0 is None else h0
    out = []
    for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out)
