"""The shared divergence core: closed-form and Monte Carlo KL, alpha/Renyi divergences,
grid quadrature, the entropies an ELBO needs, the Pareto k-hat that says when a
Monte Carlo standard error is meaningless (``pareto_khat``, ``UnreliableEstimateWarning``),
and the summary of importance weights every topic module shares (``importance_estimate``:
log-mean-exp, its standard error and k-hat; ``effective_sample_size``; the streamed
``StreamingImportanceEstimate``).

Importing this package registers the toolkit's extra closed-form KL pairs in
``torch.distributions.kl`` (Wishart, Normal-Wishart, full vs diagonal Gaussian, Normal vs
:class:`~vitoolkit.distributions.StandardNormal`); they are registered nowhere else, so
``kl_divergence``'s answer never depends on which topic modules were imported.
``UnreliableEstimateWarning`` is :class:`vitoolkit.exceptions.UnreliableEstimateWarning`.
"""

from ._gaussian import gaussian_params
from .alpha import ALPHA_ESTIMATORS, alpha_divergence, log_alpha_affinity, renyi_divergence
from .closed_form import kl_divergence
from .entropies import cross_entropy, entropy
from .grid import Grid, default_bounds, evaluate_on_grid, grid_divergence, make_grid
from .importance import (
    ImportanceEstimate,
    StreamingImportanceEstimate,
    effective_sample_size,
    effective_sample_size_unchecked,
    importance_estimate,
    importance_estimate_unchecked,
    log_mean_exp,
    log_mean_exp_unchecked,
)
from .monte_carlo import (
    CHUNK_VALUES,
    KL_ESTIMATORS,
    MAX_DRAW_VALUES,
    Estimate,
    mean_and_stderr,
    monte_carlo_kl,
    warn_if_unreliable,
)
from .psis import (
    KHAT_THRESHOLD,
    UnreliableEstimateWarning,
    fit_generalized_pareto,
    normal_ratio_tail_shape,
    pareto_khat,
    pareto_smooth,
    tail_khat,
    tail_length,
)

__all__ = [
    "ALPHA_ESTIMATORS",
    "CHUNK_VALUES",
    "MAX_DRAW_VALUES",
    "KHAT_THRESHOLD",
    "Estimate",
    "Grid",
    "ImportanceEstimate",
    "KL_ESTIMATORS",
    "alpha_divergence",
    "cross_entropy",
    "default_bounds",
    "effective_sample_size",
    "effective_sample_size_unchecked",
    "importance_estimate_unchecked",
    "log_mean_exp_unchecked",
    "entropy",
    "evaluate_on_grid",
    "fit_generalized_pareto",
    "gaussian_params",
    "grid_divergence",
    "importance_estimate",
    "kl_divergence",
    "log_alpha_affinity",
    "log_mean_exp",
    "make_grid",
    "mean_and_stderr",
    "monte_carlo_kl",
    "normal_ratio_tail_shape",
    "pareto_khat",
    "pareto_smooth",
    "renyi_divergence",
    "StreamingImportanceEstimate",
    "tail_khat",
    "tail_length",
    "UnreliableEstimateWarning",
    "warn_if_unreliable",
]
