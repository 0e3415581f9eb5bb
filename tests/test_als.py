"""The one ALS row solver (mfkit.als): exact minimiser of its objective, Cholesky and CG agree."""
import numpy as np
import pytest
import torch

from mfkit import als


def problem(n_rows=23, n_cols=11, k=3, density=0.35, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_rows, k, generator=gen, dtype=torch.float64)
    Y = torch.randn(n_cols, k, generator=gen, dtype=torch.float64)
    rows, cols = (torch.rand(n_rows, n_cols, generator=gen) < density).nonzero(as_tuple=True)
    perm = torch.randperm(len(rows), generator=gen)  # observations in any order
    a = 0.5 + torch.rand(len(rows), generator=gen, dtype=torch.float64)
    t = torch.randn(len(rows), generator=gen, dtype=torch.float64)
    return X, Y, rows[perm].numpy(), cols[perm].numpy(), a[perm], t[perm]


def dense_solution(Y, rows, cols, n_rows, reg, w, a, t):
    """Row by row, from the normal equations of the module docstring, in numpy."""
    Yn, k = Y.numpy(), Y.shape[1]
    out = np.zeros((n_rows, k))
    for u in range(n_rows):
        mine = rows == u
        Yo, ao, to = Yn[cols[mine]], a.numpy()[mine], t.numpy()[mine]
        A = w * Yn.T @ Yn + (Yo * (ao - w)[:, None]).T @ Yo + np.diag(np.broadcast_to(reg[u].numpy(), (k,)))
        if not mine.any() and w == 0:
            continue  # no data: zero
        out[u] = np.linalg.solve(A, Yo.T @ (ao * to))
    return torch.from_numpy(out)


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("per_coordinate", [False, True])
def test_cholesky_and_cg_solve_the_weighted_normal_equations(device, w, per_coordinate):
    X, Y, rows, cols, a, t = problem()
    n_rows, k = X.shape
    reg = torch.linspace(0.2, 1.0, n_rows, dtype=torch.float64)
    if per_coordinate:  # e.g. biased MF: the bias coordinate penalised differently
        reg = reg[:, None] * torch.tensor([0.1] + [1.0] * (k - 1), dtype=torch.float64)
    expected = dense_solution(Y, rows, cols, n_rows, reg, w, a, t)
    args = (rows, cols, n_rows, Y.shape[0])
    for method, budget in (("cholesky", 7), ("cg", None)):
        obs = als.Observations(*args, method=method, budget=budget or 1000, device=device, dtype=torch.float64)
        out = X.clone().to(device)
        als.solve_rows(Y.to(device), obs, out, reg.to(device), unobserved_weight=w, weights=a.to(device),
                       targets=t.to(device), cg_steps=k)  # CG is exact after k steps (float64)
        torch.testing.assert_close(out.cpu(), expected, rtol=1e-7, atol=1e-9)


def test_unit_weights_are_the_default(device):
    X, Y, rows, cols, _, _ = problem(seed=1)
    reg = torch.full((X.shape[0],), 0.5, dtype=torch.float64)
    ones = torch.ones(len(rows), dtype=torch.float64)
    expected = dense_solution(Y, rows, cols, X.shape[0], reg, 0.2, ones, ones)
    for method in als.SOLVERS:
        obs = als.Observations(rows, cols, X.shape[0], Y.shape[0], method=method, device=device, dtype=torch.float64)
        out = X.clone().to(device)
        als.solve_rows(Y.to(device), obs, out, reg.to(device), unobserved_weight=0.2, cg_steps=3)
        torch.testing.assert_close(out.cpu(), expected, rtol=1e-7, atol=1e-9)


def test_one_cg_step_gets_closer():
    X, Y, rows, cols, a, t = problem(seed=2)
    reg = torch.full((X.shape[0],), 0.3, dtype=torch.float64)
    obs = als.Observations(rows, cols, X.shape[0], Y.shape[0], method="cg", dtype=torch.float64)
    exact = dense_solution(Y, rows, cols, X.shape[0], reg, 0.1, a, t)
    one = X.clone()
    als.solve_rows(Y, obs, one, reg, unobserved_weight=0.1, weights=a, targets=t, cg_steps=1)
    assert float((one - exact).norm()) < float((X - exact).norm())


def test_rows_without_data_and_without_penalty_solve_to_zero():
    Y = torch.randn(4, 2, dtype=torch.float64)
    rows, cols = np.array([0, 0, 0]), np.array([0, 1, 2])
    obs = als.Observations(rows, cols, 2, 4, dtype=torch.float64)
    out = torch.ones(2, 2, dtype=torch.float64)
    als.solve_rows(Y, obs, out, torch.zeros(2, dtype=torch.float64), targets=torch.ones(3, dtype=torch.float64))
    assert torch.all(out[1] == 0) and torch.all(torch.isfinite(out))


def test_short_rows_through_woodbury_match_the_cholesky_solve():
    """Fold-in's path (``short_rows=True``): rows with fewer observations than d/2 solved by the Woodbury identity
    give the same minimiser as the plain batched Cholesky solve; rows without observations solve to zero."""
    rng = np.random.default_rng(0)
    other = torch.from_numpy(rng.normal(size=(300, 32))).float()
    counts = rng.integers(0, 12, 80)
    counts[:3] = 0
    rows = np.repeat(np.arange(80), counts)
    cols = np.concatenate([rng.choice(300, c, replace=False) for c in counts])
    obs = als.Observations(rows, cols, 80, 300)
    lam = torch.from_numpy(rng.uniform(0.5, 5.0, 80)).float()
    plain, short = torch.zeros(80, 32), torch.zeros(80, 32)
    als.solve_rows(other, obs, plain, lam, unobserved_weight=0.05)
    als.solve_rows(other, obs, short, lam, unobserved_weight=0.05, short_rows=True)
    assert torch.allclose(short, plain, atol=1e-5, rtol=1e-4)
    assert short[:3].abs().max() == 0
