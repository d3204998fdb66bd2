"""Distributions the toolkit needs that ``torch.distributions`` lacks, and sampling helpers.

- :class:`NormalWishart`: the Gauss-Wishart factor of Bishop's variational
  mixture (PRML eq. 10.40), p(mu, Lambda) = N(mu | m, (beta Lambda)^-1) W(Lambda | W, nu).
- :class:`MultivariateStudentT`: the posterior predictive of that mixture
  (PRML eq. 10.81, B.68).
- :class:`StandardNormal`: N(0, 1) with a given batch shape, the factors of the
  VAE prior; its KL from any ``Normal`` has a short closed form registered in
  :mod:`vitoolkit.divergences`.
- :func:`sample`: draw from any distribution with a local ``torch.Generator``
  (torch's ``sample`` only uses the global one).
- :func:`expected_log_dirichlet`, :func:`expected_log_det_wishart`: the two
  expectations every conjugate-exponential ELBO of a mixture needs.
- :func:`gumbel_softmax_sample`: one Gumbel draw giving both an exact categorical
  sample (Gumbel-max) and its Gumbel-softmax / Concrete relaxation, from a local
  generator.

One concept a module: :mod:`~vitoolkit.distributions.standard_normal`,
:mod:`~vitoolkit.distributions.normal_wishart`, :mod:`~vitoolkit.distributions.student_t`,
:mod:`~vitoolkit.distributions.samplers`, :mod:`~vitoolkit.distributions.expected` and the
argument checks in :mod:`~vitoolkit.distributions.checks`; every name is importable from here.
"""

from __future__ import annotations

from .checks import (
    _FLOAT_DTYPES as _FLOAT_DTYPES,
)
from .checks import (
    _check_lower_cholesky as _check_lower_cholesky,
)
from .checks import (
    _check_positive_tensor as _check_positive_tensor,
)
from .checks import (
    _check_square as _check_square,
)
from .checks import (
    _number_or_param as _number_or_param,
)
from .checks import (
    as_param as as_param,
)
from .checks import (
    check_distribution_arg as check_distribution_arg,
)
from .checks import (
    check_draw_memory as check_draw_memory,
)
from .checks import (
    check_positive_tensor as check_positive_tensor,
)
from .checks import (
    check_sample_shape as check_sample_shape,
)
from .checks import (
    check_validate_args as check_validate_args,
)
from .expected import expected_log_det_wishart, expected_log_dirichlet
from .normal_wishart import NormalWishart
from .samplers import (
    GumbelSoftmaxSample,
    check_temperature,
    gumbel_max_sample,
    gumbel_softmax_sample,
    reparameterise,
    sample,
)
from .samplers import (
    _gumbel_perturbed as _gumbel_perturbed,
)
from .samplers import (
    _one_hot_argmax as _one_hot_argmax,
)
from .standard_normal import StandardNormal
from .student_t import MultivariateStudentT

__all__ = [
    "reparameterise",
    "StandardNormal",
    "NormalWishart",
    "MultivariateStudentT",
    "sample",
    "expected_log_dirichlet",
    "expected_log_det_wishart",
    "GumbelSoftmaxSample",
    "gumbel_max_sample",
    "gumbel_softmax_sample",
    "check_temperature",
]
