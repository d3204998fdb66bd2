"""vitoolkit.exercises: stubs fail, the toolkit's references pass, plausible mistakes are named.

Each mutant below is a wrong implementation a student could plausibly write; the
test asserts that grading fails it AND that a failed check's message points at
the mistake (the fragment). Grading uses fixed seeds, so every run is the same.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitoolkit import exercises as ex
from vitoolkit.exercises import list_exercises, solution, stub


def check(name, fn, **kwargs):
    """The grader in this process: these tests are about the checks and the diagnoses (the
    isolation in a child process, which gives the same verdicts, is tested in
    tests/test_grader_isolation.py)."""
    return ex.check(name, fn, isolate=False, **kwargs)

REQUIRED = {
    "gaussian_kl": "(mu_q, sigma_q, mu_p, sigma_p)",
    "cavi_blei_step": "(x, m, s2, prior_var)",
    "mean_field_variances": "(cov, direction)",
    "score_function_gradient": "(cost, loc, scale, eps)",
    "pathwise_gradient": "(cost, loc, scale, eps)",
    "bernoulli_vae_elbo": "(x, mu, log_var, decoder, eps)",
    "iwae_bound": "(log_weights)",
}
SEED = 20240


def _compile(source: str, name: str):
    """Define ``name`` from ``source`` in a fresh namespace, as a notebook cell would."""
    namespace: dict = {}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _messages(report) -> str:
    return "\n".join(f"{c.name}: {c.message}" for c in report.failed)


# --------------------------------------------------------------------------- the registry
def test_the_required_exercises_exist_with_their_signatures():
    assert set(REQUIRED) <= set(list_exercises())
    for name, signature in REQUIRED.items():
        assert f"def {name}{signature}:" in stub(name)
        assert f"def {name}{signature}:" in solution(name)
    assert list_exercises("04") == ["score_function_gradient", "pathwise_gradient"]
    assert list_exercises("01_elbo_anatomy") == ["gaussian_kl"]


def test_unknown_names_and_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="unknown exercise 'nope'; available: gaussian_kl"):
        check("nope", lambda: None)
    with pytest.raises(ValueError, match="unknown exercise"):
        stub("nope")
    with pytest.raises(TypeError, match="fn must be the function"):
        check("iwae_bound", "not a function")
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        check("iwae_bound", lambda lw: lw, seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer <= 9223372036854775807"):
        check("iwae_bound", lambda lw: lw, seed=2**70)
    for bad in (1.5, True, "3"):  # not truncated, not read as 1, not parsed
        with pytest.raises(TypeError, match="seed must be an integer"):
            check("iwae_bound", lambda lw: lw, seed=bad)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_stub_fails_as_a_check_not_a_crash(name):
    source = stub(name)
    assert "raise NotImplementedError" in source and '"""' in source
    assert "vitoolkit exercise check" in source  # the header says how to check it
    report = check(name, _compile(source, name), seed=SEED)
    assert not report.passed
    assert [c.name for c in report.checks] == ["implemented"]
    assert "NotImplementedError" in report.checks[0].message


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_the_reference_passes_for_several_seeds(name):
    fn = _compile(solution(name), name)
    assert "NotImplementedError" not in solution(name)
    for seed in (0, 1, 2):
        report = check(name, fn, seed=seed)
        assert report.passed, str(report)
        assert len(report.checks) >= 5
    assert check(name, ex.get_exercise(name).reference, seed=3).passed


def test_grading_is_deterministic_given_a_seed_and_fresh_without_one():
    def wrong(log_weights):
        return log_weights.mean(0) + 1e-3 * log_weights.std(0)

    a, b = check("iwae_bound", wrong, seed=7), check("iwae_bound", wrong, seed=7)
    assert a.checks == b.checks and a.seed == b.seed == 7
    fn = _compile(solution("cavi_blei_step"), "cavi_blei_step")
    assert check("cavi_blei_step", fn, seed=11).checks == check("cavi_blei_step", fn, seed=11).checks
    seeds = {check("iwae_bound", wrong).seed for _ in range(4)}
    assert len(seeds) > 1


def test_report_prints_one_line_per_check_and_a_summary():
    report = check("iwae_bound", lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0]), seed=1)
    lines = str(report).splitlines()
    assert len(lines) == len(report.checks) + 1
    assert all(line.startswith("PASS  ") for line in lines[:-1])
    assert "7 of 7 checks passed" in lines[-1] and "seed 1" in lines[-1]
    assert repr(report) == str(report)
    assert all("tolerance" in c.message or c.message for c in report.checks)


def test_errors_in_the_students_code_are_failed_checks():
    def broken(log_weights):
        return log_weights.no_such_method()

    report = check("iwae_bound", broken, seed=0)
    assert not report.passed and len(report.checks) > 1
    assert all("raised AttributeError" in c.message for c in report.checks)
    assert "line" in report.checks[0].message  # points at the student's line


def test_a_wrong_signature_is_one_clear_check():
    report = check("gaussian_kl", lambda mu, sigma: mu, seed=0)
    assert [c.name for c in report.checks] == ["signature"]
    assert "4 positional arguments" in report.checks[0].message


# --------------------------------------------------------------------------- mutants
def _kl_terms(mu_q, sigma_q, mu_p, sigma_p):
    r = sigma_q / sigma_p
    t = (mu_q - mu_p) / sigma_p
    return r, t


def kl_no_half(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return (r**2 + t**2 - 1 - 2 * torch.log(r)).sum(-1)


def kl_dropped_constant(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return (0.5 * (r**2 + t**2) - torch.log(r)).sum(-1)


def kl_wrong_axis(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return (0.5 * (r**2 + t**2 - 1) - torch.log(r)).sum(0)


def kl_swapped(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_p, sigma_p, mu_q, sigma_q)
    return (0.5 * (r**2 + t**2 - 1) - torch.log(r)).sum(-1)


def kl_naive_overflow(mu_q, sigma_q, mu_p, sigma_p):
    var_q, var_p = sigma_q**2, sigma_p**2
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1).sum(-1)


def kl_sigma_as_variance(mu_q, sigma_q, mu_p, sigma_p):
    return 0.5 * (torch.log(sigma_p / sigma_q) + (sigma_q + (mu_q - mu_p) ** 2) / sigma_p - 1).sum(-1)


def kl_half_missing_on_variance_ratio(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return (r**2 + 0.5 * t**2 - 0.5 - torch.log(r)).sum(-1)


def kl_half_missing_on_mean_term(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return (0.5 * r**2 + t**2 - 0.5 - torch.log(r)).sum(-1)


def kl_half_missing_on_the_constant(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return (0.5 * (r**2 + t**2) - 1 - torch.log(r)).sum(-1)


def kl_not_summed(mu_q, sigma_q, mu_p, sigma_p):
    r, t = _kl_terms(mu_q, sigma_q, mu_p, sigma_p)
    return 0.5 * (r**2 + t**2 - 1) - torch.log(r)


def _phi(x, m, s2, half=0.5, with_s2=True):
    scores = x[:, None] * m - half * (m**2 + (s2 if with_s2 else 0))
    return torch.softmax(scores, dim=1)


def _means(x, phi, prior_var):
    s2 = 1 / (1 / prior_var + phi.sum(0))
    return s2 * (phi * x[:, None]).sum(0), s2


def cavi_unnormalised_phi(x, m, s2, prior_var):
    scores = x[:, None] * m - 0.5 * (m**2 + s2)
    phi = torch.exp(scores)
    return (phi, *_means(x, _phi(x, m, s2), prior_var))


def cavi_transposed_phi(x, m, s2, prior_var):
    phi = _phi(x, m, s2)
    return (phi.T, *_means(x, phi, prior_var))


def cavi_missing_half(x, m, s2, prior_var):
    phi = _phi(x, m, s2, half=1.0)
    return (phi, *_means(x, phi, prior_var))


def cavi_ignores_s2(x, m, s2, prior_var):
    phi = _phi(x, m, s2, with_s2=False)
    return (phi, *_means(x, phi, prior_var))


def cavi_naive_softmax(x, m, s2, prior_var):
    w = torch.exp(x[:, None] * m - 0.5 * (m**2 + s2))
    phi = w / w.sum(1, keepdim=True)
    return (phi, *_means(x, phi, prior_var))


def cavi_m_with_old_s2(x, m, s2, prior_var):
    phi = _phi(x, m, s2)
    new_m, new_s2 = _means(x, phi, prior_var)
    return phi, s2 * (phi * x[:, None]).sum(0), new_s2


def cavi_no_prior_in_s2(x, m, s2, prior_var):
    phi = _phi(x, m, s2)
    new_s2 = 1 / phi.sum(0)
    return phi, new_s2 * (phi * x[:, None]).sum(0), new_s2


def cavi_prior_var_as_std(x, m, s2, prior_var):
    phi = _phi(x, m, s2)
    new_s2 = 1 / (1 / prior_var**2 + phi.sum(0))
    return phi, new_s2 * (phi * x[:, None]).sum(0), new_s2


def cavi_normalised_over_data(x, m, s2, prior_var):
    phi = torch.softmax(x[:, None] * m - 0.5 * (m**2 + s2), dim=0)
    return (phi, *_means(x, _phi(x, m, s2), prior_var))


def cavi_em_mean(x, m, s2, prior_var):
    phi = _phi(x, m, s2)
    new_m, new_s2 = _means(x, phi, prior_var)
    return phi, (phi * x[:, None]).sum(0) / phi.sum(0), new_s2


def _check_direction(direction):
    if direction not in ("reverse", "forward"):
        raise ValueError(direction)


def mf_swapped(cov, direction):
    _check_direction(direction)
    if direction == "forward":
        return 1 / torch.diagonal(torch.linalg.inv(cov))
    return torch.diagonal(cov)


def mf_precision_diagonal(cov, direction):
    _check_direction(direction)
    if direction == "forward":
        return torch.diagonal(cov)
    return torch.diagonal(torch.linalg.inv(cov))


def mf_reciprocal_marginal(cov, direction):
    _check_direction(direction)
    if direction == "forward":
        return torch.diagonal(cov)
    return 1 / torch.diagonal(cov)


def mf_standard_deviations(cov, direction):
    _check_direction(direction)
    if direction == "forward":
        return torch.diagonal(cov).sqrt()
    return (1 / torch.diagonal(torch.linalg.inv(cov))).sqrt()


def mf_determinant_formula(cov, direction):
    _check_direction(direction)
    if direction == "forward":
        return torch.diagonal(cov)
    d = cov.shape[0]
    out = []
    for i in range(d):
        keep = [j for j in range(d) if j != i]
        minor = cov[keep][:, keep]
        det_minor = torch.linalg.det(minor) if d > 1 else torch.tensor(1.0, dtype=cov.dtype)
        out.append(torch.linalg.det(cov) / det_minor)
    return torch.stack(out)


def mf_no_error(cov, direction):
    if direction == "reverse":
        return 1 / torch.diagonal(torch.linalg.inv(cov))
    return torch.diagonal(cov)


def score_no_minus_one(cost, loc, scale, eps):
    f = cost(loc + scale * eps).unsqueeze(-1)
    return f * eps / scale, f * eps**2 / scale


def score_is_pathwise(cost, loc, scale, eps):
    x = (loc + scale * eps).requires_grad_(True)
    (g,) = torch.autograd.grad(cost(x).sum(), x)
    return g, g * eps


def score_missing_inverse_scale(cost, loc, scale, eps):
    f = cost(loc + scale * eps).unsqueeze(-1)
    return f * eps, f * (eps**2 - 1)


def score_averaged(cost, loc, scale, eps):
    f = cost(loc + scale * eps).unsqueeze(-1)
    return (f * eps / scale).mean(0), (f * (eps**2 - 1) / scale).mean(0)


def score_with_baseline(cost, loc, scale, eps):
    f = cost(loc + scale * eps).unsqueeze(-1)
    f = f - f.mean(0)
    return f * eps / scale, f * (eps**2 - 1) / scale


def score_from_x_minus_loc(cost, loc, scale, eps):
    x = loc + scale * eps
    f = cost(x).unsqueeze(-1)
    return f * (x - loc) / scale**2, f * ((x - loc) ** 2 - scale**2) / scale**3


def score_cost_at_eps(cost, loc, scale, eps):
    f = cost(eps).unsqueeze(-1)
    return f * eps / scale, f * (eps**2 - 1) / scale


def _grad(cost, x, reduce="sum"):
    x = x.detach().requires_grad_(True)
    f = cost(x)
    (g,) = torch.autograd.grad(f.sum() if reduce == "sum" else f.mean(), x)
    return g


def pathwise_no_eps(cost, loc, scale, eps):
    g = _grad(cost, loc + scale * eps)
    return g, g


def pathwise_grad_of_mean(cost, loc, scale, eps):
    g = _grad(cost, loc + scale * eps, reduce="mean")
    return g, g * eps


def pathwise_is_score(cost, loc, scale, eps):
    f = cost(loc + scale * eps).unsqueeze(-1)
    return f * eps / scale, f * (eps**2 - 1) / scale


def pathwise_at_loc(cost, loc, scale, eps):
    x = (loc + 0 * scale * eps)
    g = _grad(cost, x)
    return g, g * eps


def pathwise_times_x(cost, loc, scale, eps):
    x = loc + scale * eps
    g = _grad(cost, x)
    return g, g * x


def pathwise_from_x_minus_loc(cost, loc, scale, eps):
    x = loc + scale * eps
    g = _grad(cost, x)
    return g, g * (x - loc) / scale


def _decode_terms(x, logits):
    return (x * logits - F.softplus(logits)).sum(-1)


def _kl(mu, log_var):
    return 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)


def elbo_kl_no_half(x, mu, log_var, decoder, eps):
    logits = decoder(mu + torch.exp(0.5 * log_var) * eps)
    return _decode_terms(x, logits) - 2 * _kl(mu, log_var)


def elbo_std_is_variance(x, mu, log_var, decoder, eps):
    logits = decoder(mu + torch.exp(log_var) * eps)
    return _decode_terms(x, logits) - _kl(mu, log_var)


def elbo_unstable_bce(x, mu, log_var, decoder, eps):
    p = torch.sigmoid(decoder(mu + torch.exp(0.5 * log_var) * eps))
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1) - _kl(mu, log_var)


def elbo_mean_over_pixels(x, mu, log_var, decoder, eps):
    logits = decoder(mu + torch.exp(0.5 * log_var) * eps)
    return (x * logits - F.softplus(logits)).mean(-1) - _kl(mu, log_var)


def elbo_kl_added(x, mu, log_var, decoder, eps):
    logits = decoder(mu + torch.exp(0.5 * log_var) * eps)
    return _decode_terms(x, logits) + _kl(mu, log_var)


def elbo_batch_mean(x, mu, log_var, decoder, eps):
    logits = decoder(mu + torch.exp(0.5 * log_var) * eps)
    return (_decode_terms(x, logits) - _kl(mu, log_var)).mean()


def elbo_squeezed(x, mu, log_var, decoder, eps):
    logits = decoder(mu + torch.exp(0.5 * log_var) * eps)
    return (_decode_terms(x, logits) - _kl(mu, log_var)).squeeze()


def elbo_decodes_mean(x, mu, log_var, decoder, eps):
    return _decode_terms(x, decoder(mu)) - _kl(mu, log_var)


def elbo_kl_with_sigma(x, mu, log_var, decoder, eps):
    sigma = torch.exp(0.5 * log_var)
    logits = decoder(mu + sigma * eps)
    return _decode_terms(x, logits) - 0.5 * (mu**2 + sigma - 1 - log_var).sum(-1)


def iwae_mean_of_log_weights(log_weights):
    return log_weights.mean(0)


def iwae_no_log_k(log_weights):
    return torch.logsumexp(log_weights, 0)


def iwae_wrong_axis(log_weights):
    return torch.logsumexp(log_weights, 1) - math.log(log_weights.shape[1])


def iwae_naive(log_weights):
    return torch.log(torch.exp(log_weights).mean(0))


def iwae_max(log_weights):
    return log_weights.max(0).values


def iwae_log_b(log_weights):
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[1])


MUTANTS = [
    # (exercise, mutant, fragment of the failure message that names the mistake)
    ("gaussian_kl", kl_no_half, "factor 1/2 is missing"),
    ("gaussian_kl", kl_dropped_constant, "-1/2 per dimension"),
    ("gaussian_kl", kl_wrong_axis, "over the first axis instead of the last"),
    ("gaussian_kl", kl_swapped, "swapped"),
    ("gaussian_kl", kl_naive_overflow, "overflowed"),
    ("gaussian_kl", kl_sigma_as_variance, "used as variances"),
    ("gaussian_kl", kl_not_summed, "not summed over the last dimension"),
    ("gaussian_kl", kl_half_missing_on_variance_ratio,
     "variance ratio sigma_q^2 / sigma_p^2 is missing its factor"),
    ("gaussian_kl", kl_half_missing_on_mean_term,
     "the term (mu_q - mu_p)^2 / sigma_p^2 is missing its factor 1/2"),
    ("gaussian_kl", kl_half_missing_on_the_constant, "the constant is -1/2 per dimension, not -1"),
    ("cavi_blei_step", cavi_unnormalised_phi, "phi is not normalised"),
    ("cavi_blei_step", cavi_transposed_phi, "phi is transposed"),
    ("cavi_blei_step", cavi_missing_half, "missing its factor 1/2"),
    ("cavi_blei_step", cavi_ignores_s2, "phi ignores s2_k"),
    ("cavi_blei_step", cavi_naive_softmax, "exp overflowed"),
    ("cavi_blei_step", cavi_m_with_old_s2, "m_k used the old s2_k"),
    ("cavi_blei_step", cavi_no_prior_in_s2, "missing the prior precision"),
    ("cavi_blei_step", cavi_prior_var_as_std, "squared again"),
    ("cavi_blei_step", cavi_normalised_over_data, "normalised over the data points"),
    ("cavi_blei_step", cavi_em_mean, "ignores the prior"),
    ("mean_field_variances", mf_swapped, "forward-KL answer"),
    ("mean_field_variances", mf_precision_diagonal, "diagonal of the precision"),
    ("mean_field_variances", mf_reciprocal_marginal, "invert the matrix first"),
    ("mean_field_variances", mf_standard_deviations, "standard deviations"),
    ("mean_field_variances", mf_determinant_formula, "determinant"),
    ("mean_field_variances", mf_no_error, "expected ValueError"),
    ("score_function_gradient", score_no_minus_one, "-1 in the score"),
    ("score_function_gradient", score_is_pathwise, "pathwise"),
    ("score_function_gradient", score_missing_inverse_scale, "factor 1/scale is missing"),
    ("score_function_gradient", score_averaged, "averaged"),
    ("score_function_gradient", score_with_baseline, "baseline was subtracted"),
    ("score_function_gradient", score_from_x_minus_loc, "cancels catastrophically"),
    ("score_function_gradient", score_cost_at_eps, "evaluated at eps"),
    ("pathwise_gradient", pathwise_no_eps, "missing the factor dx/dscale = eps"),
    ("pathwise_gradient", pathwise_grad_of_mean, "differentiate their sum, not their mean"),
    ("pathwise_gradient", pathwise_is_score, "score-function estimates"),
    ("pathwise_gradient", pathwise_at_loc, "taken at loc"),
    ("pathwise_gradient", pathwise_times_x, "multiplies by x"),
    ("pathwise_gradient", pathwise_from_x_minus_loc, "cancels catastrophically"),
    ("bernoulli_vae_elbo", elbo_kl_no_half, "off by a factor 2"),
    ("bernoulli_vae_elbo", elbo_std_is_variance, "a missing 1/2"),
    ("bernoulli_vae_elbo", elbo_unstable_bce, "numerically stable form"),
    ("bernoulli_vae_elbo", elbo_mean_over_pixels, "averaged over the D data dimensions"),
    ("bernoulli_vae_elbo", elbo_kl_added, "KL term is added"),
    ("bernoulli_vae_elbo", elbo_batch_mean, "one ELBO per example"),
    ("bernoulli_vae_elbo", elbo_squeezed, "one ELBO per example"),
    ("bernoulli_vae_elbo", elbo_decodes_mean, "not the mean"),
    ("bernoulli_vae_elbo", elbo_kl_with_sigma, "used sigma where the variance"),
    ("iwae_bound", iwae_mean_of_log_weights, "a mean of the log-weights where a log-mean-exp belongs"),
    ("iwae_bound", iwae_no_log_k, "-log K is missing"),
    ("iwae_bound", iwae_wrong_axis, "reduced over the wrong axis"),
    ("iwae_bound", iwae_naive, "subtract the largest log-weight"),
    ("iwae_bound", iwae_max, "largest log-weight, not the log of the mean"),
    ("iwae_bound", iwae_log_b, "log B was subtracted where log K belongs"),
]


@pytest.mark.parametrize("name, mutant, fragment", MUTANTS, ids=[m[1].__name__ for m in MUTANTS])
def test_a_plausible_mistake_fails_with_a_message_naming_it(name, mutant, fragment):
    report = check(name, mutant, seed=SEED)
    assert not report.passed
    assert fragment in _messages(report), _messages(report)
    # One diagnosis for the submission, naming the mistake; where the answer is one tensor, no failed
    # check names another mistake (with several outputs, a mistake in s2 shows in m as well).
    assert fragment in report.diagnosis, report.diagnosis
    if name in ("gaussian_kl", "bernoulli_vae_elbo", "iwae_bound"):
        mistake = report.diagnosis.split(" (in ")[0]
        named = [c for c in report.failed if " is wrong: " in c.message]
        assert all(mistake in c.message for c in named), _messages(report)
    # The answer is never printed: no failure message holds the reference's source.
    reference = solution(name)
    body = [line.strip() for line in reference.splitlines() if "return" in line]
    assert not any(line in _messages(report) for line in body)


def test_every_exercise_has_at_least_three_mutants():
    counts = {name: sum(m[0] == name for m in MUTANTS) for name in REQUIRED}
    assert min(counts.values()) >= 3, counts


# --------------------------------------------------------------------------- other correct answers
def alt_kl_torch(mu_q, sigma_q, mu_p, sigma_p):
    from torch.distributions import Independent, Normal, kl_divergence

    return kl_divergence(Independent(Normal(mu_q, sigma_q), 1), Independent(Normal(mu_p, sigma_p), 1))


def alt_cavi_numpy_loop(x, m, s2, prior_var):
    x, m, s2 = np.asarray(x), np.asarray(m), np.asarray(s2)
    logits = np.outer(x, m) - 0.5 * (m**2 + s2)
    phi = np.exp(logits - logits.max(1, keepdims=True))
    phi /= phi.sum(1, keepdims=True)
    new_m, new_s2 = np.empty_like(m), np.empty_like(s2)
    for k in range(len(m)):  # one component after the other, as Algorithm 2 writes it
        new_s2[k] = 1.0 / (1.0 / prior_var + phi[:, k].sum())
        new_m[k] = new_s2[k] * (phi[:, k] @ x)
    return phi, new_m, new_s2


def alt_mean_field_inverse(cov, direction):
    if direction == "reverse":
        return 1 / torch.linalg.inv(cov).diagonal()
    if direction == "forward":
        return cov.diagonal()
    raise ValueError(direction)


def alt_pathwise_on_parameters(cost, loc, scale, eps):
    loc_ = loc.expand_as(eps).clone().requires_grad_(True)
    scale_ = torch.as_tensor(scale).expand_as(eps).clone().requires_grad_(True)
    return torch.autograd.grad(cost(loc_ + scale_ * eps).sum(), (loc_, scale_))


def alt_elbo_distributions(x, mu, log_var, decoder, eps):
    from torch.distributions import Bernoulli, Normal, kl_divergence

    std = torch.exp(log_var / 2)
    log_lik = Bernoulli(logits=decoder(mu + std * eps)).log_prob(x).sum(-1)
    return log_lik - kl_divergence(Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)


def alt_iwae_numpy(log_weights):
    lw = np.asarray(log_weights)
    top = lw.max(0)
    return top + np.log(np.mean(np.exp(lw - top), axis=0))


def alt_score_numpy(cost, loc, scale, eps):
    x = loc + scale * eps
    f = np.asarray(cost(x))[..., None]
    e, s = np.asarray(eps), np.asarray(scale)
    return f * e / s, f * (e * e - 1) / s


ALTERNATIVES = [("gaussian_kl", alt_kl_torch), ("cavi_blei_step", alt_cavi_numpy_loop),
                ("mean_field_variances", alt_mean_field_inverse),
                ("score_function_gradient", alt_score_numpy),
                ("pathwise_gradient", alt_pathwise_on_parameters),
                ("bernoulli_vae_elbo", alt_elbo_distributions), ("iwae_bound", alt_iwae_numpy)]


@pytest.mark.parametrize("name, fn", ALTERNATIVES, ids=[a[1].__name__ for a in ALTERNATIVES])
def test_other_correct_answers_pass(name, fn):
    """Correct answers written differently (torch.distributions, NumPy, loops) are not penalised."""
    for seed in (0, 1):
        report = check(name, fn, seed=seed)
        assert report.passed, str(report)


# --------------------------------------------------------------------------- references agree
def test_reverse_mean_field_reference_agrees_with_the_toolkits_fit():
    from vitoolkit.fitting import correlated_gaussian, fit_gaussian

    rho, scales = 0.8, (1.5, 0.7)
    target = correlated_gaussian(rho, scales)
    fit = fit_gaussian(target, "reverse", family="diagonal", num_points=41, n_init=1)
    got = _compile(solution("mean_field_variances"), "mean_field_variances")(
        target.covariance_matrix, "reverse")
    assert torch.allclose(torch.diagonal(fit.covariance), got, rtol=1e-4)
    expected = torch.tensor(scales, dtype=torch.float64) ** 2 * (1 - rho**2)  # PRML 10.1.2
    assert torch.allclose(got, expected, rtol=1e-12)


def test_the_elbo_exercise_agrees_with_the_vae_model():
    from vitoolkit.vae import VAE

    model = VAE(data_dim=6, latent_dim=2, hidden_dims=(8,), seed=0).double()
    x = (torch.rand(5, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    gen = torch.Generator().manual_seed(3)
    want = model.elbo(x, generator=gen)
    loc, log_var = model.encoder(x).chunk(2, dim=-1)
    eps = torch.randn(loc.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = _compile(solution("bernoulli_vae_elbo"), "bernoulli_vae_elbo")(x, loc, log_var, model.decoder, eps)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_stub_files_are_written_whole_and_arguments_are_checked(tmp_path):
    from vitoolkit.exercises import ExerciseFileError, load_function, write_stub

    path = write_stub("gaussian_kl", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaussian_kl.py"]  # no temporary left
    assert callable(load_function(path, "gaussian_kl"))
    with pytest.raises(ValueError, match="fmt must be one of"):
        write_stub("gaussian_kl", tmp_path, fmt="txt")
    with pytest.raises(TypeError, match="force must be True or False"):
        write_stub("gaussian_kl", tmp_path, force=1)
    with pytest.raises(TypeError, match="out_dir must be a path"):
        write_stub("gaussian_kl", 3)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ExerciseFileError, match="out_dir") as info:
        write_stub("gaussian_kl", blocker / "sub")
    assert str(blocker / "sub") in str(info.value)
    with pytest.raises(TypeError, match="path must be a path"):
        load_function(None, "gaussian_kl")
    with pytest.raises(ValueError, match="name must be a Python function name"):
        load_function(path, "gaussian kl")


# --------------------------------------------------------------------------- float32 answers
def f32_kl(mu_q, sigma_q, mu_p, sigma_p):
    mu_q, sigma_q, mu_p, sigma_p = (t.float() for t in (mu_q, sigma_q, mu_p, sigma_p))
    r = sigma_q / sigma_p
    return (0.5 * (r**2 + ((mu_q - mu_p) / sigma_p) ** 2 - 1) - torch.log(r)).sum(-1)


def f32_cavi(x, m, s2, prior_var):
    x, m, s2 = x.float(), m.float(), s2.float()
    phi = torch.softmax(x[:, None] * m - 0.5 * (m**2 + s2), dim=1)
    new_s2 = 1 / (1 / prior_var + phi.sum(0))
    return phi, new_s2 * (phi * x[:, None]).sum(0), new_s2


def f32_mean_field_numpy(cov, direction):
    cov = np.asarray(cov, dtype=np.float32)
    if direction == "reverse":
        return 1 / np.diag(np.linalg.inv(cov))
    if direction == "forward":
        return np.diag(cov).copy()
    raise ValueError(direction)


def f32_score(cost, loc, scale, eps):
    loc, scale, eps = loc.float(), torch.as_tensor(scale).float(), eps.float()
    f = cost(loc + scale * eps).float().unsqueeze(-1)
    return f * eps / scale, f * (eps**2 - 1) / scale


def f32_pathwise(cost, loc, scale, eps):
    x = (loc.float() + torch.as_tensor(scale).float() * eps.float()).requires_grad_(True)
    (g,) = torch.autograd.grad(cost(x).sum(), x)
    return g.float(), g.float() * eps.float()


def f32_elbo(x, mu, log_var, decoder, eps):
    x, mu, log_var, eps = x.float(), mu.float(), log_var.float(), eps.float()
    logits = decoder(mu + torch.exp(0.5 * log_var) * eps).float()
    return (x * logits - F.softplus(logits)).sum(-1) - 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)


def f32_iwae(log_weights):
    lw = log_weights.float()
    return torch.logsumexp(lw, 0) - math.log(lw.shape[0])


def f32_constant_iwae(log_weights):
    """The issue's example: float64 log-weights minus a float32 constant log K."""
    return torch.logsumexp(log_weights, 0) - torch.log(torch.tensor(log_weights.shape[0]))


FLOAT32 = [("gaussian_kl", f32_kl), ("cavi_blei_step", f32_cavi),
           ("mean_field_variances", f32_mean_field_numpy),
           ("score_function_gradient", f32_score), ("pathwise_gradient", f32_pathwise),
           ("bernoulli_vae_elbo", f32_elbo), ("iwae_bound", f32_iwae), ("iwae_bound", f32_constant_iwae)]
# The checks float32 cannot pass: inputs beyond its range (3.4e38) or below its smallest number.
FLOAT64_ONLY = ("1e200", "1e-200")


@pytest.mark.parametrize("name, fn", FLOAT32, ids=[f[1].__name__ for f in FLOAT32])
def test_float32_answers_are_held_to_float32_precision(name, fn):
    """Correct float32 code passes every check float32 can represent; the others fail naming the dtype."""
    for seed in (0, 1):
        report = check(name, fn, seed=seed)
        for c in report.failed:
            assert any(f in c.name for f in FLOAT64_ONLY), str(report)
            assert "your answer is float32" in c.message and "need float64" in c.message, c.message
        passed = [c for c in report.checks if c.passed]
        assert len(passed) >= len(report.checks) - 2 and len(passed) >= 4, str(report)
        if fn is not f32_constant_iwae:  # (that one's answer is float64: held to float64's tolerance)
            assert any("held to its precision" in c.message for c in passed), str(report)


def test_the_float32_tolerance_is_far_below_every_known_mistake():
    """The float32 tolerance cannot hide a mistake: every mutant still fails when its answer is float32."""
    for name, mutant, _ in MUTANTS:
        def as_float32(*args, _mutant=mutant):
            out = _mutant(*args)
            if isinstance(out, (tuple, list)):
                return type(out)(o.float() if isinstance(o, torch.Tensor) else o for o in out)
            return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out

        report = check(name, as_float32, seed=SEED)
        assert not report.passed, (mutant.__name__, str(report))


# --------------------------------------------------------------------------- what came back
@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_no_return_is_named_as_such_for_every_exercise(name):
    def forgot_return(*args):
        pass

    report = check(name, forgot_return, seed=0)
    assert not report.passed
    assert "your function returned None; is the return statement missing?" in report.diagnosis
    assert "summed" not in report.diagnosis


@pytest.mark.parametrize("returned, fragment", [
    (lambda lw: "0.5", "a string was returned; expected a tensor of numbers"),
    (lambda lw: np.array(["a"] * lw.shape[1]), "is a NumPy array of strings (dtype <U1); expected a tensor"),
    (lambda lw: np.log(np.exp(lw.numpy()).mean(0) - 2 + 0j),
     "is complex (complex128); expected real numbers"),
    (lambda lw: torch.logsumexp(lw, 0).to(torch.complex128), "is complex (torch.complex128)"),
    (lambda lw: list(torch.logsumexp(lw.requires_grad_(True), 0)),
     "a list of tensors was returned; expected one tensor (torch.stack"),
    (lambda lw: lw.mean(0) > 0, "a tensor of booleans"),
    (lambda lw: {"bound": lw.mean(0)}, "is a dict; expected a tensor"),
], ids=["str", "str-array", "complex-numpy", "complex-tensor", "list-of-grad-tensors", "bool", "dict"])
def test_other_kinds_of_answer_get_their_own_plain_message(returned, fragment):
    report = check("iwae_bound", returned, seed=0)
    assert not report.passed and fragment in report.diagnosis, report.diagnosis
    assert all(not c.passed for c in report.checks)  # never graded as passed (nothing dropped)


def test_in_process_grading_restores_torchs_defaults_and_the_working_directory(tmp_path):
    """isolate=False (and functions that cannot be sent): the state a function changes is put back."""
    import os

    def meddles(log_weights):
        torch.set_default_dtype(torch.float16)
        torch.set_grad_enabled(False)
        os.chdir(tmp_path)
        raise SystemExit(0)

    before = (torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd())
    report = ex.check("iwae_bound", meddles, seed=0, isolate=False)
    assert (torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd()) == before
    assert not report.passed and not report.isolated
    assert report.diagnosis.startswith("your function raised SystemExit")


def test_a_half_precision_answer_is_held_to_float32s_tolerance_and_named():
    report = check("iwae_bound", lambda lw: f32_iwae(lw).half(), seed=0)
    assert not report.passed
    assert report.failed and all("your answer is float16, held to float32's tolerance" in c.message
                                 for c in report.failed)
