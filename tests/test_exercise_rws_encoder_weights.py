"""The ``rws_encoder_weights`` exercise (lesson 08): the reference passes, the stub fails cleanly,
each plausible mistake fails with a message naming it, and the toolkit's ``rws_weights`` (the
grader's reference, used by ``train(..., objective="rws")``) agrees with an independent route."""

from __future__ import annotations

import pytest
import torch

from vitoolkit.exercises import check, list_exercises, solution, stub
from vitoolkit.vae import VAE
from vitoolkit.vae.wake_sleep import rws_encoder_surrogate, rws_weights

NAME = "rws_encoder_weights"
SEED = 8080


def _w(lj, lq):
    return torch.softmax(lj - lq, 0)


def naive_exp(lj, lq):
    w = torch.exp(lj - lq)
    w = w / w.sum(0)
    return w, (w * lq).sum(0)


def wrong_axis(lj, lq):
    w = torch.softmax(lj - lq, 1)
    return w, (w * lq).sum(0)


def unnormalised(lj, lq):
    w = torch.exp(lj - lq)
    return w, (_w(lj, lq) * lq).sum(0)


def joint_only(lj, lq):
    w = torch.softmax(lj, 0)
    return w, (w * lq).sum(0)


def inverted(lj, lq):
    w = torch.softmax(lq - lj, 0)
    return w, (w * lq).sum(0)


def objective_on_log_joint(lj, lq):
    w = _w(lj, lq)
    return w, (w * lj).sum(0)


def objective_unweighted(lj, lq):
    return _w(lj, lq), lq.mean(0)


def objective_divided_by_k(lj, lq):
    w = _w(lj, lq)
    return w, (w * lq).sum(0) / lj.shape[0]


def objective_not_summed(lj, lq):
    w = _w(lj, lq)
    return w, w * lq


MUTANTS = [
    (naive_exp, "subtract each column's largest log-weight"),
    (wrong_axis, "normalised over the wrong axis"),
    (unnormalised, "not normalised"),
    (joint_only, "use log p(x, z) alone"),
    (inverted, "weights are inverted"),
    (objective_on_log_joint, "the encoder's objective weights log q"),
    (objective_unweighted, "plain mean of log q"),
    (objective_divided_by_k, "divided by K"),
    (objective_not_summed, "nothing was summed"),
]


def _messages(report) -> str:
    return "\n".join(f"{c.name}: {c.message}" for c in report.failed)


def test_registered_with_its_signature_and_the_reference_passes():
    assert NAME in list_exercises("08")
    assert f"def {NAME}(log_joint, log_q):" in stub(NAME)
    namespace: dict = {}
    exec(compile(solution(NAME), "<solution>", "exec"), namespace)  # noqa: S102
    for seed in (0, 1, SEED):
        assert check(NAME, namespace[NAME], seed=seed, isolate=False).passed


def test_the_stub_fails_as_a_check_not_a_crash():
    namespace: dict = {}
    exec(compile(stub(NAME), "<stub>", "exec"), namespace)  # noqa: S102
    report = check(NAME, namespace[NAME], seed=SEED, isolate=False)
    assert not report.passed
    assert "not implemented" in report.diagnosis


@pytest.mark.parametrize("mutant, fragment", MUTANTS, ids=[m[0].__name__ for m in MUTANTS])
def test_a_plausible_mistake_fails_with_a_message_naming_it(mutant, fragment):
    report = check(NAME, mutant, seed=SEED, isolate=False)
    assert not report.passed
    assert fragment in _messages(report), _messages(report)


def test_rws_weights_against_explicit_normalisation_and_the_surrogate():
    g = torch.Generator().manual_seed(0)
    lj, lq = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g,
                                                                              dtype=torch.float64)
    w = torch.exp(lj) / torch.exp(lq)  # moderate values: the direct formula is exact enough
    torch.testing.assert_close(rws_weights(lj, lq), w / w.sum(0), rtol=1e-12, atol=0)
    # shifting every log-weight of one example leaves its weights unchanged (and no overflow)
    torch.testing.assert_close(rws_weights(lj + 5e3, lq), w / w.sum(0), rtol=1e-12, atol=0)
    # the surrogate train(..., objective="rws") uses is sum_k w~_k log q(z_k | x) with these weights
    model = VAE(5, 2, hidden_dims=(4,), seed=0).double()
    x = torch.randint(0, 2, (4, 5), generator=g).double()
    got = rws_encoder_surrogate(model, x, num_samples=7, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    loc, scale = model._encode_params(x, None)
    z = loc + scale * torch.randn((7, *loc.shape), generator=gen, dtype=loc.dtype)
    normal = torch.distributions.Normal(loc, scale)
    log_q = normal.log_prob(z).sum(-1)
    log_joint = (model.likelihood.distribution(model._decode_params(z, None)).log_prob(x)
                 + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1))
    torch.testing.assert_close(got, (rws_weights(log_joint, log_q) * log_q).sum(0), rtol=1e-10,
                               atol=1e-12)


def test_rws_weights_refuses_bad_input_by_name():
    t = torch.zeros(3, 2)
    with pytest.raises(TypeError, match="log_joint"):
        rws_weights([0.0, 1.0], t)
    with pytest.raises(ValueError, match="same shape"):
        rws_weights(t, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="log_q"):
        rws_weights(t, torch.tensor(0.0))
    with pytest.raises(ValueError, match="NaN"):
        rws_weights(t, torch.full((3, 2), float("nan")))
