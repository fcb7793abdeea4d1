"""The maths of the feature_momentum recording's experiment.py, on tensors small enough to
work out by hand. Run by tests/harness/test_seed_recordings.py with the experiment
interpreter: python check_feature_momentum.py WORKSPACE_COPY"""

import math
import sys

import torch

sys.path.insert(0, sys.argv[1])
import experiment as e  # noqa: E402

# three latents over two tokens: latent 2 fires with both others, latents 0 and 1 never together
f = torch.tensor([[1.0, 0.0, 1.0],
                  [0.0, 1.0, 1.0]])
c = e.coactivation(f)
r = 1 / math.sqrt(2)  # |cos| between (1, 0) or (0, 1) and (1, 1)
expected = torch.tensor([[0, 0, r], [0, 0, r], [r, r, 0]])
assert torch.allclose(c, expected, atol=1e-6), c

# the buffer: m <- beta m + (1 - beta) sum_j C_ij, from zero
m = e.CompetitionMomentum(3, beta=0.9, device="cpu")
m.update(c)
assert torch.allclose(m.m, torch.tensor([0.1 * r, 0.1 * r, 0.2 * r])), m.m
m.update(c)
assert torch.allclose(m.m, torch.tensor([0.19 * r, 0.19 * r, 0.38 * r])), m.m
# latent 2 is above the median: the persistent competitor weighs double
w = m.weights()
assert w.tolist() == [1.0, 1.0, 2.0], w

# penalty: sum_ij (w_i + w_j) / 2 * C_ij / n = 4 pairs (0,2) (2,0) (1,2) (2,1) of (1 + 2) / 2 * r, over 3
p = e.momentum_penalty(c, w)
assert math.isclose(p.item(), 4 * 1.5 * r / 3, rel_tol=1e-6), p

# the gradient opposes more co-firing: latent 1 firing on token 0 too would raise the penalty
f2 = f.clone().requires_grad_(True)
e.momentum_penalty(e.coactivation(f2), w).backward()
assert f2.grad[0, 1] > 0, f2.grad

# off by default in the sense of the config: lambda 0 builds no buffer
assert e.TrainConfig(momentum_lambda=0.0).momentum_lambda == 0.0
print("feature_momentum maths ok")
