"""The public objects whose docstrings state formulas, and where the API pages show them.

Shared by ``tests/test_api_docstrings.py`` (the docstring writes the formula as math) and
``tests/test_book.py`` (the built API page renders it with MathJax).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

#: Public objects whose docstring states a formula: it must be written as math
#: (``:math:`` or ``.. math::``), so the API page renders it.
WITH_FORMULAS = [
    "vitoolkit.calibration",
    "vitoolkit.calibration.expected_calibration_error",
    "vitoolkit.cavi.blei",
    "vitoolkit.cavi.blei.assignment_update",
    "vitoolkit.cavi.blei.mean_update",
    "vitoolkit.cavi.blei.exact_log_evidence",
    "vitoolkit.cavi.bayesian_gmm",
    "vitoolkit.cavi.bayesian_gmm.BayesianGMM",
    "vitoolkit.cavi.bayesian_gmm.BayesianGMM.score_samples",
    "vitoolkit.divergences.alpha",
    "vitoolkit.divergences.alpha.alpha_divergence",
    "vitoolkit.divergences.alpha.renyi_divergence",
    "vitoolkit.divergences.alpha.log_alpha_affinity",
    "vitoolkit.divergences.closed_form",
    "vitoolkit.divergences.closed_form.kl_divergence",
    "vitoolkit.divergences.psis",
    "vitoolkit.divergences.grid",
    "vitoolkit.divergences.grid.grid_divergence",
    "vitoolkit.divergences.entropies",
    "vitoolkit.divergences.entropies.entropy",
    "vitoolkit.divergences.entropies.cross_entropy",
    "vitoolkit.divergences.psis.fit_generalized_pareto",
    "vitoolkit.divergences.psis.pareto_smooth",
    "vitoolkit.divergences.psis.normal_ratio_tail_shape",
    "vitoolkit.gradients.gaussian",
    "vitoolkit.gradients.gaussian.GradientEstimator",
    "vitoolkit.gradients.gaussian.gaussian_gradients",
    "vitoolkit.gradients.exact",
    "vitoolkit.gradients.exact.exact_gaussian_gradient",
    "vitoolkit.gradients.exact.gauss_hermite_expectation",
    "vitoolkit.gradients.costs",
    "vitoolkit.gradients.costs.Linear",
    "vitoolkit.gradients.costs.Quadratic",
    "vitoolkit.gradients.costs.GaussianBump",
    "vitoolkit.gradients.costs.Cosine",
    "vitoolkit.gradients.costs.Step",
    "vitoolkit.fitting.objectives",
    "vitoolkit.fitting.objectives.snis_weights",
    "vitoolkit.fitting.objectives.ReverseKLReparam",
    "vitoolkit.fitting.objectives.ForwardKLWeighted",
    "vitoolkit.fitting.objectives.AlphaReparam",
    "vitoolkit.fitting.eight_schools",
    "vitoolkit.fitting.family",
    "vitoolkit.fitting.moments",
    "vitoolkit.fitting.flow_fit.fit_flow",
    "vitoolkit.fitting.reference.grid_reference",
    "vitoolkit.fitting.targets.correlated_gaussian",
    "vitoolkit.fitting.targets.Banana",
    "vitoolkit.fitting.targets.Funnel",
    "vitoolkit.fitting.targets.Ring",
    "vitoolkit.fitting.flows",
    "vitoolkit.vae.flow_posterior",
    "vitoolkit.vae.training.train",
    "vitoolkit.vae.annealing.linear_warmup",
    "vitoolkit.vae.annealing.cyclical",
    "vitoolkit.cavi.distributed",
    "vitoolkit.cavi.svi",
    "vitoolkit.fitting.reference.GridReference",
    "vitoolkit.fitting.starts.default_starts",
    "vitoolkit.gradients.experiments.gradient_statistics",
    "vitoolkit.gradients.experiments.variance_vs_dimension",
    "vitoolkit.course.evidence",
    "vitoolkit.course.evidence.independent_difference",
    "vitoolkit.datasets.shapes.shape_area",
    "vitoolkit.vae.likelihoods",
    "vitoolkit.vae.likelihoods.bce_floor",
    "vitoolkit.vae.likelihoods.continuous_bernoulli_log_normaliser",
    "vitoolkit.vae.generation",
    "vitoolkit.fitting.diagnose",
    "vitoolkit.gradients.discrete",
    "vitoolkit.gradients.discrete.exact_discrete_gradient",
    "vitoolkit.gradients.generic",
    "vitoolkit.vae.importance",
    "vitoolkit.vae.importance.log_importance_weights",
    "vitoolkit.vae.flow_posterior.flow_elbo",
    "vitoolkit.vae.flow_posterior.flow_amortisation_gap",
    "vitoolkit.vae.latent.interpolate_codes",
    "vitoolkit.vae.sparse",
    "vitoolkit.vae.sparse.bernoulli_sparsity_penalty",
    "vitoolkit.vae.linear_gaussian",
    "vitoolkit.vae.linear_gaussian.linear_gaussian_posterior",
    "vitoolkit.vae.linear_gaussian.linear_gaussian_evidence",
    "vitoolkit.vae.wake_sleep",
    "vitoolkit.vae.wake_sleep.wake_sleep_loss",
    "vitoolkit.vae.wake_sleep.rws_loss",
    "vitoolkit.vae.wake_sleep.rws_encoder_surrogate",
    "vitoolkit.vae.posterior_stats",
    "vitoolkit.vae.posterior_stats.AggregatePosterior",
    "vitoolkit.vae.posterior_stats.KLDecomposition",
    "vitoolkit.vae.posterior_stats.kl_decomposition",
    "vitoolkit.vae.posterior_stats.aggregate_kl_to_prior",
    "vitoolkit.vae.posterior_stats.gaussian_total_correlation",
]


def module_of(name: str) -> str:
    """The module an object name lives in (the longest importable prefix)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        try:
            importlib.import_module(candidate)
        except ImportError:
            continue
        return candidate
    raise ImportError(name)


def rendered_section(site: Path, name: str) -> str:
    """The HTML of ``name``'s own part of its API page: a module's text before its first
    member, or an object's entry up to the next documented object."""
    module = module_of(name)
    html = (site / "generated" / f"{module}.html").read_text(encoding="utf-8")
    if name == module:
        start = html.index(f'id="module-{module}"')
    else:
        start = html.index(f'id="{name}"')
    nxt = re.compile(r'<dt class="sig[^"]*"[^>]*id="vitoolkit\.')
    found = nxt.search(html, start + 1)
    return html[start:found.start() if found else len(html)]


def has_mathjax_math(html: str) -> bool:
    """Sphinx's MathJax markup: inline ``\\(...\\)`` in a math span, or a display math div."""
    return bool(re.search(r'<span class="math[^"]*">\\\(', html) or '<div class="math' in html)
