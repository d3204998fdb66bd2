"""Exercises with an autograder: students implement the core formulas, the toolkit grades them.

::

    from vitoolkit.exercises import check, list_exercises, stub
    print(stub("iwae_bound"))        # the signature, the math, a NotImplementedError body
    report = check("iwae_bound", my_iwae_bound)
    print(report)                    # one line per check; report.passed

Each exercise is graded on fresh random cases (seeded: ``check(..., seed=s)``
repeats a run, and every report prints its seed) and on edge cases
(broadcasting, batch shapes, magnitudes where a naive formula overflows), against
the toolkit's own implementation within a stated tolerance. When an output is
wrong, the message names the probable mistake (a missing 1/2, a transposed axis,
an unnormalised phi, a mean of log-weights where a log-mean-exp belongs, ...) by
comparing it with what known mistakes produce; it never prints the answer.

=========================  =========================  ==========================================
exercise                   lesson                     graded against
=========================  =========================  ==========================================
gaussian_kl                01_elbo_anatomy            vitoolkit.divergences.kl_divergence
cavi_blei_step             02_cavi_gmm                vitoolkit.cavi assignment_update, mean_update
mean_field_variances       03_forward_vs_reverse_kl   vitoolkit.fitting.target_moments; PRML 10.1.2
score_function_gradient    04_gradient_estimators     vitoolkit.gradients.gaussian_gradients
pathwise_gradient          04_gradient_estimators     vitoolkit.gradients.gaussian_gradients
bernoulli_vae_elbo         05_vae                     vitoolkit.vae likelihood and KL registry
iwae_bound                 06_vae_beyond              the log-mean-exp of vitoolkit.vae.VAE.iwae_bound
gumbel_softmax_relaxation  07_discrete_latents        vitoolkit.distributions.gumbel_softmax_sample
rws_encoder_weights        08_wake_sleep              vitoolkit.vae.wake_sleep.rws_weights (train's RWS)
predictive_log_loss        09_vi_classification       vitoolkit.divergences.log_mean_exp; fitting.predictive
flow_log_density           10_richer_families         vitoolkit.fitting.flows (Pyro's Planar layer)
=========================  =========================  ==========================================

Student functions receive float64 torch tensors and may return tensors or NumPy
arrays (converted before grading; a float32 answer is held to float32's tolerance,
:func:`vitoolkit.exercises.grading.precision_tolerance`). The student's code runs in
a separate process with a time limit and a memory cap, and only its outputs come
back (:mod:`vitoolkit.exercises.isolation`); :func:`check_file` grades a ``.py`` or
``.ipynb`` file, and :mod:`vitoolkit.exercises.batch` a folder of them. The command
line is ``vitoolkit exercise list|start|check|grade|solution``
(:mod:`vitoolkit.exercises.command`).
"""

from . import (  # noqa: F401 - registers the exercises
    cavi,
    classification,
    discrete,
    flows,
    gradients,
    kl,
    mean_field,
    vae,
    wake_sleep,
)
from .files import CHECK_TAG, ExerciseFileError, load_function
from .registry import EXERCISES, Exercise, check, check_file, get_exercise, list_exercises, solution, stub
from .report import CheckResult, Report
from .stubs import write_stub

__all__ = [
    "CHECK_TAG",
    "CheckResult",
    "EXERCISES",
    "Exercise",
    "ExerciseFileError",
    "Report",
    "check",
    "check_file",
    "get_exercise",
    "list_exercises",
    "load_function",
    "solution",
    "stub",
    "write_stub",
]
