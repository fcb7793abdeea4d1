"""TopK SAE training ops whose backward touches only the selected latents.

A TopK step's gradient is zero for every latent a token did not select, so routing it through
autograd's dense path (scatter into [batch, d_sae], then two [batch, d_sae] matmuls, and the
sort inside embedding_bag's weight backward) spends most of a CPU step on zeros. Here:

- `topk_encode` computes pre-activations with one dense matmul, keeps each token's k largest
  (and optionally the `aux_k` largest among a given set of latents, for AuxK), and in the
  backward pass forms the encoder's gradient as a sparse [d_sae, batch] x [batch, d_in] product.
- `sparse_decode` is embedding_bag (sum of the selected decoder rows, weighted), with the
  decoder's gradient formed by the same sparse product instead of embedding_bag's sort-based one.

Values and gradients equal those of the dense formulas to float rounding; tests compare them.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F

# torch flags its sparse CSR tensors as beta on first use; the ops used here are checked by tests
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


class TopK(NamedTuple):
    values: torch.Tensor  # [batch, k] pre-activations (before any ReLU)
    indices: torch.Tensor  # [batch, k] latent ids


def scatter_rows(indices: torch.Tensor, weights: torch.Tensor, dense: torch.Tensor, n_rows: int) -> torch.Tensor:
    """out[j] = sum of weights[b, s] * dense[b] over every (b, s) with indices[b, s] == j.

    That is S^T @ dense with S the [batch, n_rows] matrix holding `weights` at `indices`: one
    stable sort of the batch * k latent ids lays S^T out as a CSR matrix (rows = latents), which
    the sparse BLAS multiplies by `dense` reading each latent's tokens in turn. Repeated indices
    add up, as they do in the dense formula.
    """
    batch, k = indices.shape
    flat = indices.reshape(-1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's parallel CPU sort of this vector ran ~10x slower on 2 threads
    try:
        sorted_ids, order = torch.sort(flat, stable=True)
    finally:
        torch.set_num_threads(threads)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=flat.device)
    crow[1:] = torch.bincount(sorted_ids, minlength=n_rows).cumsum(0)
    S_t = torch.sparse_csr_tensor(crow, order // k, weights.reshape(-1)[order], (n_rows, batch),
                                  check_invariants=False)
    return S_t @ dense


class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xs, b_dec, W_enc, b_enc, k, aux_ids, aux_k):
        xc = xs - b_dec
        pre = torch.addmm(b_enc, xc, W_enc)
        top = pre.topk(k, dim=-1, sorted=False)
        if aux_ids is not None and aux_k > 0:
            aux = pre[:, aux_ids].topk(min(aux_k, len(aux_ids)), dim=-1, sorted=False)
            aux_values, aux_indices = aux.values, aux_ids[aux.indices]
        else:
            aux_values = pre.new_zeros(len(xs), 0)
            aux_indices = torch.zeros(len(xs), 0, dtype=torch.long, device=xs.device)
        ctx.mark_non_differentiable(top.indices, aux_indices)
        ctx.save_for_backward(xc, W_enc, top.indices, aux_indices)
        return top.values, top.indices, aux_values, aux_indices

    @staticmethod
    def backward(ctx, g_values, _g_indices, g_aux_values, _g_aux_indices):
        xc, W_enc, indices, aux_indices = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        if aux_indices.shape[1]:
            indices = torch.cat([indices, aux_indices], dim=1)
            g_values = torch.cat([g_values, g_aux_values], dim=1)
        g_b_enc = torch.zeros(d_sae, dtype=g_values.dtype, device=g_values.device)
        g_b_enc.index_add_(0, indices.reshape(-1), g_values.reshape(-1))
        g_W_enc = scatter_rows(indices, g_values, xc, d_sae).t() if ctx.needs_input_grad[2] else None
        # every token's xc = xs - b_dec, so b_dec's gradient is minus the sum over tokens of
        # d loss / d xc = W_enc @ (per-latent gradient summed over tokens) = W_enc @ g_b_enc
        g_b_dec = -(W_enc @ g_b_enc) if ctx.needs_input_grad[1] else None
        g_xs = None
        if ctx.needs_input_grad[0]:
            g_xs = F.embedding_bag(indices, W_enc.t().contiguous(), per_sample_weights=g_values, mode="sum")
        return g_xs, g_b_dec, g_W_enc, g_b_enc, None, None, None


def topk_encode(xs: torch.Tensor, b_dec: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, k: int,
                aux_ids: torch.Tensor | None = None, aux_k: int = 0) -> tuple[TopK, TopK | None]:
    """The k largest of (xs - b_dec) @ W_enc + b_enc per token, and (when aux_ids is given) the
    min(aux_k, len(aux_ids)) largest among the latents aux_ids, with their latent ids."""
    values, indices, aux_values, aux_indices = _TopKEncode.apply(xs, b_dec, W_enc, b_enc, k, aux_ids, aux_k)
    aux = TopK(aux_values, aux_indices) if aux_ids is not None and aux_k > 0 else None
    return TopK(values, indices), aux


class _DecoderGrad(torch.autograd.Function):
    """Identity on the decoded batch; its backward adds the decoder's gradient (sparse product)."""

    @staticmethod
    def forward(ctx, out, indices, values, W_dec):
        ctx.save_for_backward(indices, values)
        ctx.n_rows = W_dec.shape[0]
        return out.view_as(out)

    @staticmethod
    def backward(ctx, g_out):
        indices, values = ctx.saved_tensors
        g_W_dec = scatter_rows(indices, values, g_out, ctx.n_rows) if ctx.needs_input_grad[3] else None
        return g_out, None, None, g_W_dec


def sparse_decode(indices: torch.Tensor, values: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """sum_j values[:, j] * W_dec[indices[:, j]] without a dense [batch, d_sae] matmul.

    embedding_bag sees a detached decoder (so it computes only the values' gradient); the
    decoder's gradient comes from _DecoderGrad.
    """
    out = F.embedding_bag(indices, W_dec.detach(), per_sample_weights=values, mode="sum")
    return _DecoderGrad.apply(out, indices, values.detach(), W_dec)
