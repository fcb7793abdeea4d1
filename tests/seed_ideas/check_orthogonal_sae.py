"""The maths of the orthogonal_sae recording's experiment.py, on matrices small enough to
work out by hand. Run by tests/harness/test_seed_recordings.py with the experiment
interpreter: python check_orthogonal_sae.py WORKSPACE_COPY"""

import math
import sys

import torch

sys.path.insert(0, sys.argv[1])
import experiment as e  # noqa: E402

# --- the group-pair penalty ----------------------------------------------------------------
# four unit rows in 3 dimensions, groups {0, 1} and {2, 3}; row 2 = (0.6, 0.8, 0) overlaps both
# rows of group 0, row 3 is orthogonal to them:
#   W_a W_b^T = [[0.6, 0], [0.8, 0]]
W = torch.tensor([[1.0, 0.0, 0.0],
                  [0.0, 1.0, 0.0],
                  [0.6, 0.8, 0.0],
                  [0.0, 0.0, 1.0]])
two = [torch.tensor([0, 1]), torch.tensor([2, 3])]
# alpha 0: (0.6^2 + 0.8^2) / (2 * 2) = 0.25
assert math.isclose(e.group_orthogonality_loss(W, two, 0.0).item(), 0.25, rel_tol=1e-6)
# alpha 0.1: the target is 0.1 * sign, and sign(0) = 0 leaves the orthogonal pairs at target 0:
#   ((0.6 - 0.1)^2 + (0.8 - 0.1)^2) / 4 = (0.25 + 0.49) / 4 = 0.185
assert math.isclose(e.group_orthogonality_loss(W, two, 0.1).item(), 0.185, rel_tol=1e-6)
# a negative overlap is pulled towards -alpha, not +alpha: flip row 2 and nothing changes
W_neg = W.clone()
W_neg[2] = -W_neg[2]
assert math.isclose(e.group_orthogonality_loss(W_neg, two, 0.1).item(), 0.185, rel_tol=1e-6)
# orthogonal groups cost nothing at alpha 0; rows within one group are never compared
I4 = torch.eye(4)
assert e.group_orthogonality_loss(I4, [torch.tensor([0, 1]), torch.tensor([2, 3])], 0.0).item() == 0.0
same_group = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
assert e.group_orthogonality_loss(same_group, [torch.tensor([0, 1]), torch.tensor([2])], 0.0).item() == 0.0
# three groups: the pairs a < b add up, each over its own |a| |b|
#   rows e1, e1 | e1 | e2: pair (0, 1): (1 + 1) / (2 * 1) = 1; pair (0, 2): 0; pair (1, 2): 0
three_rows = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
three = [torch.tensor([0, 1]), torch.tensor([2]), torch.tensor([3])]
assert math.isclose(e.group_orthogonality_loss(three_rows, three, 0.0).item(), 1.0, rel_tol=1e-6)
# the gradient at alpha 0 pushes row 2 away from group 0: d/dw_2 = 2 * (0.6 e1 + 0.8 e2) / 4
Wg = W.clone().requires_grad_(True)
e.group_orthogonality_loss(Wg, two, 0.0).backward()
assert torch.allclose(Wg.grad[2], torch.tensor([0.3, 0.4, 0.0]), atol=1e-6), Wg.grad
# ... and the signs S_ab are constants: at alpha 0.1 it is 2 * (0.5 e1 + 0.7 e2) / 4
Wg = W.clone().requires_grad_(True)
e.group_orthogonality_loss(Wg, two, 0.1).backward()
assert torch.allclose(Wg.grad[2], torch.tensor([0.25, 0.35, 0.0]), atol=1e-6), Wg.grad

# --- the ramp: lambda(t) = lambda_max * min(1, t / t0), t0 = 30 % of 100 steps ----------------
for step, want in [(0, 0.0), (15, 0.05), (30, 0.1), (60, 0.1), (99, 0.1)]:
    got = e.ramp(step, 100, 0.1, 0.3)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (step, got)
assert e.ramp(7, 100, 0.0, 0.3) == 0.0  # lambda_max 0: off

# --- condition numbers: largest over smallest singular value of each group's block ------------
D = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
conds = e.condition_numbers(D, [torch.tensor([0, 1]), torch.tensor([2, 3])])
assert len(conds) == 2
assert math.isclose(conds[0], 3.0, rel_tol=1e-9) and math.isclose(conds[1], 1.0, rel_tol=1e-9), conds
# rows (1, 1) and (1, -1) / sqrt 2 scaled: [[1, 1], [1, -1]] has singular values sqrt 2 twice
assert math.isclose(e.condition_numbers(torch.tensor([[1.0, 1.0], [1.0, -1.0]]), [torch.tensor([0, 1])])[0], 1.0,
                    rel_tol=1e-9)

# --- regrouping from co-activation statistics ------------------------------------------------
# six latents, two tokens each of two kinds: latents 0, 2, 4 fire together on one kind, 1, 3, 5 on
# the other. The firing indicators' correlation is +1 within a set and -1 across, so its
# leading eigenvector is +-(1, -1, 1, -1, 1, -1): two groups, one per set.
stats = e.CoactivationStats(6, "cpu")
idx = torch.tensor([[0, 2, 4], [1, 3, 5], [0, 2, 4], [1, 3, 5]])
stats.update(idx, torch.ones(4, 3, dtype=torch.bool))
assert stats.tokens == 4
assert stats.counts[0, 2].item() == 2 and stats.counts[0, 1].item() == 0 and stats.counts[3, 3].item() == 2
corr = e.coactivation_correlation(stats.counts, stats.tokens)
u = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
assert torch.allclose(corr, u[:, None] * u[None, :], atol=1e-6), corr
v = e.leading_eigenvector(corr)
assert math.isclose(abs(v @ u).item() / u.norm().item(), 1.0, rel_tol=1e-5), v
groups = e.regroup(stats.counts, stats.tokens, 2)
assert sorted(sorted(g.tolist()) for g in groups) == [[0, 2, 4], [1, 3, 5]], groups
# a valid partition for any statistics: every latent in exactly one of G equal groups
torch.manual_seed(0)
stats = e.CoactivationStats(12, "cpu")
stats.update(torch.stack([torch.randperm(12)[:4] for _ in range(50)]), torch.rand(50, 4) > 0.2)
for n_groups in (2, 3, 4):
    groups = e.regroup(stats.counts, stats.tokens, n_groups)
    assert len(groups) == n_groups and all(len(g) == 12 // n_groups for g in groups), groups
    assert sorted(torch.cat(groups).tolist()) == list(range(12)), groups
# inactive slots (a top-k value of zero) are not counted, and a latent that never fired gets a
# zero row instead of a division by zero
stats = e.CoactivationStats(4, "cpu")
stats.update(torch.tensor([[0, 1], [0, 2]]), torch.tensor([[True, False], [True, True]]))
assert stats.counts[0, 0].item() == 2 and stats.counts[1, 1].item() == 0 and stats.counts[0, 2].item() == 1
corr = e.coactivation_correlation(stats.counts, stats.tokens)
assert torch.isfinite(corr).all() and corr[3].abs().sum().item() == 0.0  # latent 3 never fired
assert corr[0].abs().sum().item() == 0.0  # latent 0 fired on every token: no variance either

# --- sampling rows for the per-step estimate: a subset of each group, the whole group when small
gen = torch.Generator().manual_seed(0)
start = e.contiguous_groups(12, 3)
assert [g.tolist() for g in start] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
sub = e.sample_groups(start, 2, gen)
assert all(len(s) == 2 and set(s.tolist()) <= set(g.tolist()) for s, g in zip(sub, start)), sub
assert e.sample_groups(start, 0, gen) is start
# the estimate is unbiased: its mean over many draws approaches the penalty over all rows
Wr = torch.nn.functional.normalize(torch.randn(12, 5, generator=torch.Generator().manual_seed(1)), dim=1)
exact = e.group_orthogonality_loss(Wr, start, 0.0).item()
draws = [e.group_orthogonality_loss(Wr, e.sample_groups(start, 2, gen), 0.0).item() for _ in range(4000)]
assert abs(sum(draws) / len(draws) - exact) < 0.03 * exact, (sum(draws) / len(draws), exact)

# --- overlaps logged at the end: rows of W above, groups {0, 1} and {2, 3} ---------------------
ov = e.group_overlaps(W, two)
# between: |cos| of the four cross pairs 0.6, 0, 0.8, 0 -> 0.35; within: (0,1) 0 and (2,3) 0
assert math.isclose(ov["mean_abs_cos_between_groups"], 0.35, rel_tol=1e-6), ov
assert ov["mean_abs_cos_within_groups"] == 0.0, ov

# --- the defaults the idea names -------------------------------------------------------------
tc = e.TrainConfig()
assert (tc.ortho_groups, tc.ortho_t0_fraction, tc.regroup_every) == (4, 0.3, 50)
print("orthogonal_sae maths ok")
