"""The core's Gumbel-max sampler: exact categorical draws, the same draws as the relaxation's
``hard`` half, and what the categorical score-function estimators now call."""

from __future__ import annotations

import pytest
import torch
from _stats import assert_mc_close

from vitoolkit.distributions import gumbel_max_sample, gumbel_softmax_sample


def test_draws_equal_the_relaxations_hard_half_for_the_same_generator_state():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, -torch.inf]], dtype=torch.float64)
    a = gumbel_max_sample(logits, (500,), generator=torch.Generator().manual_seed(11))
    b = gumbel_softmax_sample(logits, 0.7, (500,), generator=torch.Generator().manual_seed(11)).hard
    assert torch.equal(a, b)


def test_frequencies_are_the_softmax_probabilities():
    # 40,000 draws: each frequency within Z standard errors sqrt(p (1 - p) / n) of softmax(logits)
    logits = torch.tensor([1.2, 0.0, -0.7, -3.0, 0.4], dtype=torch.float64)
    n = 40000
    draws = gumbel_max_sample(logits, (n,), generator=torch.Generator().manual_seed(5))
    probs = torch.softmax(logits, -1)
    assert_mc_close(draws.mean(0), probs, (probs * (1 - probs) / n).sqrt())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_hot_rows_of_the_logits_dtype_without_gradient(dtype):
    logits = torch.zeros(2, 3, dtype=dtype, requires_grad=True)
    out = gumbel_max_sample(logits, (4, 5), generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 5, 2, 3) and out.dtype == dtype and not out.requires_grad
    assert torch.equal(out.sum(-1), torch.ones(4, 5, 2, dtype=dtype))
    assert bool(((out == 0) | (out == 1)).all())


def test_minus_infinity_categories_are_never_drawn():
    logits = torch.tensor([0.0, -torch.inf, 0.0, -torch.inf], dtype=torch.float64)
    draws = gumbel_max_sample(logits, (5000,), generator=torch.Generator().manual_seed(2))
    assert float(draws[:, [1, 3]].sum()) == 0.0


def test_a_row_without_mass_is_refused_by_name():
    with pytest.raises(ValueError, match="logits"):
        gumbel_max_sample(torch.full((2, 3), -torch.inf, dtype=torch.float64))
