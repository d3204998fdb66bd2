"""The ``flow_log_density`` exercise: the reference passes, the stub fails cleanly, and each
plausible mistake fails with a message naming it (the mutation table)."""

from __future__ import annotations

import math

import pytest
import torch

from vitoolkit.exercises import check, list_exercises, solution, stub

NAME = "flow_log_density"
SEED = 20240


def _base(eps):
    return -0.5 * (eps**2).sum(-1) - 0.5 * eps.shape[-1] * math.log(2 * math.pi)


def _parts(eps, u, w, b):
    a = torch.tanh(eps @ w + b)
    return a, eps + a.unsqueeze(-1) * u, torch.log(torch.abs(1 + (1 - a**2) * (w @ u)))


def wrong_sign(eps, u, w, b):
    _, z, log_det = _parts(eps, u, w, b)
    return z, _base(eps) + log_det


def no_jacobian(eps, u, w, b):
    _, z, _ = _parts(eps, u, w, b)
    return z, _base(eps)


def base_at_z(eps, u, w, b):
    _, z, log_det = _parts(eps, u, w, b)
    return z, _base(z) - log_det


def no_tanh_derivative(eps, u, w, b):
    _, z, _ = _parts(eps, u, w, b)
    return z, _base(eps) - torch.log(torch.abs(1 + w @ u)).expand(eps.shape[:-1])


def one_minus_tanh(eps, u, w, b):
    a, z, _ = _parts(eps, u, w, b)
    return z, _base(eps) - torch.log(torch.abs(1 + (1 - a) * (w @ u)))


def log_q_not_summed(eps, u, w, b):
    _, z, log_det = _parts(eps, u, w, b)
    return z, -0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - log_det.unsqueeze(-1)


MUTANTS = [
    (wrong_sign, "wrong sign"),
    (no_jacobian, "Jacobian is missing"),
    (base_at_z, "evaluated at z"),
    (no_tanh_derivative, "derivative of tanh is missing"),
    (one_minus_tanh, "1 - tanh^2, not 1 - tanh"),
    (log_q_not_summed, "sum the base log-density over the last dimension"),
]


def _messages(report) -> str:
    return "\n".join(f"{c.name}: {c.message}" for c in report.failed)


def test_registered_with_its_signature_and_the_reference_passes():
    assert NAME in list_exercises("10_richer_families")
    assert f"def {NAME}(eps, u, w, b):" in stub(NAME)
    namespace: dict = {}
    exec(compile(solution(NAME), "<solution>", "exec"), namespace)  # noqa: S102
    for seed in (0, 1, SEED):
        assert check(NAME, namespace[NAME], seed=seed).passed


def test_the_stub_fails_as_a_check_not_a_crash():
    namespace: dict = {}
    exec(compile(stub(NAME), "<stub>", "exec"), namespace)  # noqa: S102
    report = check(NAME, namespace[NAME], seed=SEED)
    assert not report.passed


@pytest.mark.parametrize("mutant, fragment", MUTANTS, ids=[m[0].__name__ for m in MUTANTS])
def test_a_plausible_mistake_fails_with_a_message_naming_it(mutant, fragment):
    report = check(NAME, mutant, seed=SEED)
    assert not report.passed
    assert fragment in _messages(report), _messages(report)
