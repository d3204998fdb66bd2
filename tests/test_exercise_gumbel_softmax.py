"""The ``gumbel_softmax_relaxation`` exercise (lesson 07): the model answer passes, the stub fails
cleanly, and each plausible mistake fails with a message naming it (the mutation table).

The independent route is the definition itself, checked here on a case computed by hand: with
U = exp(-1) the Gumbel draw -log(-log U) is exactly 0, so the relaxed sample is softmax(logits/tau).
"""

from __future__ import annotations

import math

import pytest
import torch

from vitoolkit.exercises import check, list_exercises, solution, stub

NAME = "gumbel_softmax_relaxation"
SEED = 7007


def _gumbel(u):
    return -torch.log(-torch.log(u))


def softmax_over_draws(logits, uniform, temperature):
    return torch.softmax((logits + _gumbel(uniform)) / temperature, dim=0)


def no_temperature(logits, uniform, temperature):
    return torch.softmax(logits + _gumbel(uniform), dim=-1)


def times_temperature(logits, uniform, temperature):
    return torch.softmax((logits + _gumbel(uniform)) * temperature, dim=-1)


def only_noise_scaled(logits, uniform, temperature):
    return torch.softmax(logits + _gumbel(uniform) / temperature, dim=-1)


def log_uniform_noise(logits, uniform, temperature):
    return torch.softmax((logits + torch.log(uniform)) / temperature, dim=-1)


def logistic_noise(logits, uniform, temperature):
    return torch.softmax((logits + torch.log(uniform) - torch.log1p(-uniform)) / temperature, dim=-1)


def gumbel_sign_flipped(logits, uniform, temperature):
    return torch.softmax((logits - _gumbel(uniform)) / temperature, dim=-1)


def hard_sample(logits, uniform, temperature):
    a = (logits + _gumbel(uniform)).argmax(-1)
    return torch.nn.functional.one_hot(a, logits.shape[-1]).double()


def naive_exp(logits, uniform, temperature):
    e = torch.exp((logits + _gumbel(uniform)) / temperature)
    return e / e.sum(-1, keepdim=True)


def one_sample_only(logits, uniform, temperature):
    return torch.softmax((logits + _gumbel(uniform[0])) / temperature, dim=-1)


MUTANTS = [
    (softmax_over_draws, "wrong dimension"),
    (no_temperature, "temperature is missing"),
    (times_temperature, "temperature multiplies"),
    (only_noise_scaled, "only the noise is divided by tau"),
    (log_uniform_noise, "the noise is log U"),
    (logistic_noise, "logistic"),
    (gumbel_sign_flipped, "wrong sign"),
    (hard_sample, "hard sample"),
    (naive_exp, "overflowed"),
    (one_sample_only, "one relaxed sample per draw"),
]


def _messages(report) -> str:
    return "\n".join(f"{c.name}: {c.message}" for c in report.failed)


def _solution():
    namespace: dict = {}
    exec(compile(solution(NAME), "<solution>", "exec"), namespace)  # noqa: S102
    return namespace[NAME]


def test_the_model_answer_matches_the_definition_on_a_hand_computed_case():
    fn = _solution()
    logits = torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64)
    u = torch.full((2, 3), math.exp(-1.0), dtype=torch.float64)  # Gumbel draw exactly 0
    y = fn(logits, u, 0.5)
    want = torch.tensor([math.exp(2.0), 1.0, math.exp(-4.0)], dtype=torch.float64)
    torch.testing.assert_close(y, (want / want.sum()).expand(2, 3), rtol=1e-12, atol=0)


def test_registered_with_its_signature_and_the_model_answer_passes():
    assert NAME in list_exercises("07")
    assert f"def {NAME}(logits, uniform, temperature):" in stub(NAME)
    fn = _solution()
    for seed in (0, 1, SEED):
        report = check(NAME, fn, seed=seed, isolate=False)
        assert report.passed, _messages(report)


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
