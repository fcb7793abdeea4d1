"""The TopK fast path (saekit/topk_sparse.py, used by experiment.py's sae_loss) against the
dense formulas it replaces: same loss, same gradients for every parameter, with and without
AuxK's dead latents, on a small random SAE."""

from types import SimpleNamespace

import experiment
import pytest
import torch
import torch.nn.functional as F
from saekit.topk_sparse import scatter_rows, sparse_decode, topk_encode

D_IN, D_SAE, K, BATCH = 24, 96, 4, 64


def small_sae(architecture: str = "topk") -> experiment.SAE:
    torch.manual_seed(0)
    tc = experiment.TrainConfig(architecture=architecture, k=K, aux_k=16)
    bench = SimpleNamespace(cfg=SimpleNamespace(model="tiny", hook_layer=0, device="cpu", context_length=16))
    sae = experiment.SAE(D_IN, D_SAE, tc, input_scale=1.7, bench=bench)
    with torch.no_grad():  # away from the tied start, so that encoder and decoder gradients differ
        sae.W_enc.add_(0.3 * torch.randn_like(sae.W_enc))
        sae.b_enc.normal_(0, 0.2)
        sae.b_dec.normal_(0, 0.5)
    return sae


def dense_loss(sae: experiment.SAE, x: torch.Tensor, tc: experiment.TrainConfig, dead: torch.Tensor):
    """sae_loss's TopK loss written with dense [batch, d_sae] tensors and plain autograd."""
    xs = x / sae.input_scale
    pre = sae.pre_acts(x)
    f = sae.activate(pre)
    xs_hat = f @ sae.W_dec + sae.b_dec
    loss = (xs_hat - xs).pow(2).sum(-1).mean()
    if tc.aux_k and dead.any():
        err = (xs - xs_hat).detach()
        dead_pre = pre.masked_fill(~dead, float("-inf"))
        top = dead_pre.topk(min(tc.aux_k, int(dead.sum())), dim=-1)
        aux_f = torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))
        aux = (aux_f @ sae.W_dec - err).pow(2).sum(-1).mean() / err.sub(err.mean(0)).pow(2).sum(-1).mean()
        loss = loss + tc.aux_coefficient * aux
    return loss


def grads(sae: experiment.SAE, loss: torch.Tensor) -> dict:
    params = dict(sae.named_parameters())
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


@pytest.mark.parametrize("n_dead", [0, 30, D_SAE])
def test_sparse_backward_equals_dense(n_dead):
    sae = small_sae()
    tc = experiment.TrainConfig(k=K, aux_k=16)
    x = torch.randn(BATCH, D_IN) * 3.0
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[torch.randperm(D_SAE)[:n_dead]] = True
    fast, _, parts = experiment.sae_loss(sae, x, tc, 0.0, dead)
    assert ("aux" in parts) == (n_dead > 0)
    dense = dense_loss(sae, x, tc, dead)
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-6)
    g_fast, g_dense = grads(sae, fast), grads(sae, dense)
    for name in g_dense:
        assert g_dense[name].abs().sum() > 0, name  # each parameter really gets gradient here
        torch.testing.assert_close(g_fast[name], g_dense[name], rtol=1e-4, atol=1e-6, msg=name)


def test_input_gradient_and_repeated_ids():
    """The ops on their own: the gradient for the input (unused by training, kept correct), and
    scatter_rows adding up a latent listed twice for one token (AuxK can pick a latent the main
    top-k also holds)."""
    torch.manual_seed(1)
    xs = torch.randn(BATCH, D_IN, requires_grad=True)
    b_dec, b_enc = torch.randn(D_IN, requires_grad=True), torch.randn(D_SAE, requires_grad=True)
    W_enc, W_dec = torch.randn(D_IN, D_SAE, requires_grad=True), torch.randn(D_SAE, D_IN, requires_grad=True)
    aux_ids = torch.arange(0, D_SAE, 3)
    top, aux = topk_encode(xs, b_dec, W_enc, b_enc, K, aux_ids, 8)
    out = sparse_decode(top.indices, F.relu(top.values), W_dec) + sparse_decode(aux.indices, aux.values, W_dec)
    loss = out.pow(2).sum()

    pre = (xs - b_dec) @ W_enc + b_enc
    main = torch.zeros_like(pre).scatter(-1, pre.topk(K, dim=-1).indices, 1.0).bool()
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[aux_ids] = True
    aux_mask = torch.zeros_like(pre).scatter(-1, pre.masked_fill(~dead, float("-inf")).topk(8, dim=-1).indices, 1.0).bool()
    ref = (torch.where(main, F.relu(pre), 0.0) @ W_dec + torch.where(aux_mask, pre, 0.0) @ W_dec).pow(2).sum()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-4)
    inputs = [xs, b_dec, W_enc, b_enc, W_dec]
    for got, want in zip(torch.autograd.grad(loss, inputs), torch.autograd.grad(ref, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)

    ids = torch.tensor([[2, 2, 5]])
    w = torch.tensor([[1.0, 2.0, 4.0]])
    out = scatter_rows(ids, w, torch.tensor([[1.0, -1.0]]), 6)
    torch.testing.assert_close(out[2], torch.tensor([3.0, -3.0]))
    torch.testing.assert_close(out[5], torch.tensor([4.0, -4.0]))
    assert out[[0, 1, 3, 4]].abs().sum() == 0


def test_relu_architecture_still_trains():
    sae = small_sae("relu")
    tc = experiment.TrainConfig(architecture="relu", k=K)
    x = torch.randn(BATCH, D_IN)
    loss, fired, parts = experiment.sae_loss(sae, x, tc, 0.5, torch.zeros(D_SAE, dtype=torch.bool))
    assert "l1" in parts and fired.any()
    g = grads(sae, loss)
    assert all(v.abs().sum() > 0 for v in g.values())
