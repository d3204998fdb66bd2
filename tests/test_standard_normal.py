"""StandardNormal (vitoolkit.distributions) and its KL pair registered in the core."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Independent, Normal
from torch.distributions.kl import _kl_normal_normal

from vitoolkit.distributions import StandardNormal
from vitoolkit.divergences import kl_divergence

D = torch.float64


def _normal(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    loc = torch.randn(shape, generator=gen, dtype=D) * 3
    scale = torch.rand(shape, generator=gen, dtype=D) * 5 + 1e-3
    return Normal(loc, scale)


@pytest.mark.parametrize("p_shape, q_shape", [
    ((50, 4), (4,)), ((3, 1), (4,)), ((4,), (3, 1)), ((), (2, 3)), ((2, 3), ()),
    ((5,), (5,)), ((2, 1, 3), (4, 1)),
])
def test_kl_to_standard_normal_matches_torch_normal_normal_on_broadcast_shapes(p_shape, q_shape):
    p = _normal(p_shape)
    q = StandardNormal.with_shape(q_shape, dtype=D)
    reference = _kl_normal_normal(p, Normal(torch.zeros(q_shape, dtype=D), torch.ones(q_shape, dtype=D)))
    got = kl_divergence(p, q)
    assert got.shape == torch.broadcast_shapes(torch.Size(p_shape), torch.Size(q_shape))
    torch.testing.assert_close(got, reference)


def test_kl_to_standard_normal_is_the_general_form_also_through_independent():
    p = Independent(_normal((6, 3), seed=1), 1)
    q = Independent(StandardNormal.with_shape((3,), dtype=D), 1)
    reference = kl_divergence(p, Independent(Normal(torch.zeros(3, dtype=D), torch.ones(3, dtype=D)), 1))
    torch.testing.assert_close(kl_divergence(p, q), reference)
    assert kl_divergence(p, q).shape == (6,)


def test_kl_against_quadrature_with_scipy_densities():
    import scipy.integrate

    m, s = 0.7, 1.9
    exact = float(kl_divergence(Normal(torch.tensor(m, dtype=D), torch.tensor(s, dtype=D)),
                                StandardNormal(torch.tensor(0.0, dtype=D), torch.tensor(1.0, dtype=D))))
    p, q = scipy.stats.norm(m, s), scipy.stats.norm(0, 1)
    quad, _ = scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -40, 40)
    assert abs(exact - quad) < 1e-9


def test_gradients_through_p_match_the_general_form():
    loc = torch.randn(8, 3, dtype=D, generator=torch.Generator().manual_seed(2)).requires_grad_()
    log_scale = torch.zeros(8, 3, dtype=D).requires_grad_()
    q = StandardNormal.with_shape((3,), dtype=D)
    g_fast = torch.autograd.grad(kl_divergence(Normal(loc, log_scale.exp()), q).sum(),
                                 (loc, log_scale))
    g_ref = torch.autograd.grad(
        _kl_normal_normal(Normal(loc, log_scale.exp()), Normal(torch.zeros(3, dtype=D),
                                                               torch.ones(3, dtype=D))).sum(),
        (loc, log_scale))
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b)


def test_parameters_other_than_zero_and_one_are_refused():
    with pytest.raises(ValueError, match="loc"):
        StandardNormal(2.0, 3.0)
    with pytest.raises(ValueError, match="scale"):
        StandardNormal(torch.zeros(3), torch.tensor([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="requires grad"):
        StandardNormal(torch.zeros(3, requires_grad=True), torch.ones(3))


def test_it_is_a_normal_with_the_right_shape_density_and_expand():
    q = StandardNormal(torch.zeros(4), torch.ones(4))
    assert isinstance(q, Normal) and q.batch_shape == (4,)
    x = torch.linspace(-3, 3, 4)
    np.testing.assert_allclose(q.log_prob(x).numpy(), scipy.stats.norm.logpdf(x.numpy()), rtol=1e-6)
    e = q.expand((2, 4))
    assert isinstance(e, StandardNormal) and e.batch_shape == (2, 4)
    assert StandardNormal().batch_shape == ()
    assert StandardNormal.with_shape((2, 3)).loc.dtype == torch.get_default_dtype()


def test_standard_normal_pair_is_registered_without_the_vae_module():
    import subprocess
    import sys

    code = ("import sys, torch; from vitoolkit.distributions import StandardNormal;"
            "from vitoolkit.divergences import kl_divergence;"
            "from torch.distributions import Normal;"
            "v = kl_divergence(Normal(torch.tensor([[1.], [2.], [0.]]), torch.ones(3, 1)),"
            " StandardNormal.with_shape((4,)));"
            "assert 'vitoolkit.vae' not in sys.modules; print(tuple(v.shape))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(3, 4)"


@given(m=st.floats(-5, 5), s=st.floats(0.05, 10))
def test_kl_is_nonnegative_and_zero_only_at_the_standard_normal(m, s):
    p = Normal(torch.tensor(m, dtype=D), torch.tensor(s, dtype=D))
    kl = float(kl_divergence(p, StandardNormal(torch.tensor(0.0, dtype=D), torch.tensor(1.0, dtype=D))))
    assert kl >= -1e-12
    if abs(m) > 1e-3 or abs(s - 1) > 1e-3:
        assert kl > 0
    assert float(kl_divergence(StandardNormal(), StandardNormal())) == 0.0
