// Selective scan (the Mamba S6 recurrence) as a fused LibTorch autograd op.
//
// Shape legend
//   B  batch          L  sequence length (time)
//   E  channels (d_inner = expand * d_model)
//   N  state size (d_state)
//
//   u, delta, z : (B, L, E)   contiguous; what nn::Linear produces, so the
//                             model needs no transposes
//   A           : (E, N)      usually -exp(A_log), computed by the caller
//   Bm, Cm      : (B, L, N)   input-dependent B and C
//   D, delta_bias : (E)
//   Each of A, D, delta_bias may instead be per example, (B, E, N) / (B, E):
//   batch element b then uses its own row, and its gradient is per example
//   too (not summed over b): DP-SGD's per-example gradients in one backward.
//
//   delta_eff = delta_softplus ? softplus(delta + delta_bias) : delta + delta_bias
//               (softplus as PyTorch's: identity above 20)
//   h_0 = 0
//   h_t[e,n] = exp(delta_eff[t,e] * A[e,n]) * h_{t-1}[e,n]
//            + delta_eff[t,e] * Bm[t,n] * u[t,e]
//   y[t,e]   = sum_n Cm[t,n] * h_t[e,n] + D[e] * u[t,e]
//   out      = z given ? y * silu(z) : y                       (B, L, E)
//
// float32 and float64 are supported (float64 is for tests and gradient
// checks). All tensors must share one dtype and live on the CPU; inputs that
// are not contiguous are made contiguous.
#pragma once

#include <torch/torch.h>

// The fused op: hand-written forward and backward, OpenMP over
// (batch x channel blocks), using at::get_num_threads() threads.
//
// Memory: the forward saves its inputs plus a checkpoint of h every K = 64
// steps (selective_scan_chunk()), about B x ceil(L/K) x E x N floats (E
// rounded up to 16, N up to 4/8/16/32/64); the backward recomputes h
// chunk by chunk from those checkpoints in small per-thread buffers. No
// (B, L, E, N) tensor is ever allocated. When no input requires grad (or grad
// mode is off) no checkpoints are stored at all.
//
// Determinism: every reduction (grad of A, Bm, Cm, D, delta_bias) is done in a
// fixed order independent of scheduling, so two runs with the same thread
// count give bit-identical results. (For B >= 2 * threads the work split, and
// so every bit of the result, does not depend on the thread count at all.)
torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                             const c10::optional<torch::Tensor>& z,
                             const c10::optional<torch::Tensor>& delta_bias, bool delta_softplus);

// The same maths as a loop over time of plain LibTorch ops, autograd by
// LibTorch (the structure of state-spaces/mamba's selective_scan_ref): the
// baseline for benchmarks and the reference for tests. Works in any dtype.
// It materialises (B, L, E, N) tensors: use it for small problems only.
torch::Tensor selective_scan_ref(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                                 const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                 const c10::optional<torch::Tensor>& z,
                                 const c10::optional<torch::Tensor>& delta_bias, bool delta_softplus);

// Time steps between saved checkpoints of h (the backward recomputes one such
// chunk at a time). Exposed for the tests (which vary it to cover chunk
// boundaries) and the benchmark; 0 restores the default.
void selective_scan_set_chunk(int64_t steps);
int64_t selective_scan_chunk();
