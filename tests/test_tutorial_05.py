"""Tutorial 05 (05_vae.py): the numbers behind its new sections add up.

``test_tutorials.py`` already requires every claim to hold (quick seeds 0-2 and
full size) and every figure to be clean; this file reads the same seed-0 quick
run (the ``tutorial_run`` fixture, executed once per session) and checks
identities that hold whatever the training did.
"""

from __future__ import annotations

import math


def test_tutorial_05_numbers_add_up(quick_run):
    run = quick_run("05_vae")
    numbers = run.summary["numbers"]
    # Bounds in the order theory gives them (in expectation; the margins are many s.e.).
    assert numbers["vae_test_elbo"] <= numbers["vae_test_iwae_k50"]
    assert numbers["vae_kl_code_gaussian_to_prior"] < numbers["ae_kl_code_gaussian_to_prior"]
    # ELBO surgery: average KL = information + KL(aggregate || prior), and I <= log N.
    for tag in ("2d", "8d"):
        total = numbers[f"mutual_information[{tag}]"] + numbers[f"aggregate_kl_to_prior[{tag}]"]
        assert abs(total - numbers[f"average_kl_per_image[{tag}]"]) < 0.2
        assert numbers[f"mutual_information[{tag}]"] <= math.log(numbers["n_train"])
    # The law of total variance: the pixel-noise share is a fraction.
    assert 0 < numbers["pixel_noise_share_of_variance"] < 1
    # BCE's floor is the summed binary entropy, at most 64 log 2 per 8x8 image.
    assert 0 < numbers["bce_floor_per_image"] <= 64 * math.log(2)
    assert numbers["bce_missing_log_normaliser_per_image"] >= 64 * math.log(2)
    assert numbers["gradient_variance_ratio_mc_over_analytic"] > 0


def test_tutorial_05_dequantised_numbers_are_probabilities_in_bits(quick_run):
    """Section 4's dequantised decoders: the bound is the density plus D log w (w = 1/16), at
    most 0 on average, and bits per dimension is -bound / (64 ln 2) (Theis et al. 2016, 3.1)."""
    numbers = quick_run("05_vae").summary["numbers"]
    assert abs(numbers["log_volume_correction"] - 64 * math.log(1 / 16)) < 0.01
    for key in ("decoder_sigma_01", "decoder_sigma_learned"):
        density = numbers[f"log_likelihood[dequantized_{key}]"]
        bound = numbers[f"dequantized_log_prob_bound[{key}]"]
        assert abs(bound - (density + 64 * math.log(1 / 16))) < 0.01
        assert bound < 0
        bpd = numbers[f"dequantized_bits_per_dim[{key}]"]
        assert abs(bpd - (-bound / (64 * math.log(2)))) < 1e-3
    assert 0 < numbers["bits_per_dim[binary_bernoulli]"] < 1
