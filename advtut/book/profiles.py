"""What ``profile="quick"`` and ``profile="full"`` mean, chapter by chapter, in one place.

``quick`` is the chapter's size for a 2-core CPU (CI); ``full`` is the source's scale, meant for
one GPU. A chapter reads its row through :func:`advtut.book.chapter.start_chapter`; nothing else in
the package branches on the profile.
"""
from __future__ import annotations

from types import MappingProxyType

__all__ = ["PROFILES", "settings"]

PROFILES: dict[str, dict[str, dict]] = {
    "01_iris": {
        # Iris is tiny: both profiles fit the same model on all 150 flowers; full only draws finer
        # maps and runs the gradient-descent check longer.
        "quick": dict(grid_points=250, gd_outer_steps=20, gd_inner_steps=400,
                      c_values=(0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)),
        "full": dict(grid_points=600, gd_outer_steps=40, gd_inner_steps=2000,
                     c_values=(0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)),
    },
    "02_linear_imagenet": {
        # Both profiles read the same Tiny ImageNet copy (offline: the staged 100 + 10 images per
        # class); full trains 5x longer, sweeps more weight decays and solves many more exact
        # optima. decays: Caffe's weight decay in the source's 0-255 pixel units (divided by
        # 255^2 for our [0, 1] pixels). n_fool: validation images fooled per model with the
        # template heuristic; n_exact: of those, how many also get the exact L2 and L-infinity optima.
        "quick": dict(epochs=6, decays=(0.0005, 100.0, 2_000.0, 20_000.0), sizes=(8, 16, 32),
                      n_fool=40, n_exact=6, lr_steps=40, lesson_images=2_000),
        "full": dict(epochs=30, decays=(0.0005, 10.0, 100.0, 500.0, 2_000.0, 5_000.0, 20_000.0),
                     sizes=(8, 16, 32), n_fool=500, n_exact=40, lr_steps=200, lesson_images=10_000),
    },
    "03_units_directions": {
        # The MNIST CNN itself is trained as "mnist_cnn" says. k: images per direction (a row of
        # the figures, the families' tables); ks: the k of the top-k scores in the tests;
        # n_units, n_random: units drawn among the live ones (all of them when fewer are live),
        # random directions and random k-subsets per layer; n_ablate, ablate_images: directions
        # of each kind projected out, over that many test images (None: all); code_dim: units of
        # the synthetic aligned codes; ica_components, ica_fit: relu3's ICA basis and the images
        # it is fitted on; photo_conv_ablation: whether the photo CNN's convolutional layer is
        # ablated too (its readout runs a convolutional block per direction, about 0.1 s on the
        # 2-core CPU, so quick leaves it out and says so); n_networks: independently trained
        # MNIST CNNs (seeds seed, seed + 1, ...), the unit of replication for a claim about
        # networks: one in quick (the chapter says so), three in full; n_rows: rows per
        # figure. The flowers CNN (used when no ImageNet AlexNet is loaded) is trained as
        # "flowers_cnn" says.
        "quick": dict(k=8, ks=(8, 32), n_units=1_000, n_random=1_000, n_ablate=200,
                      ablate_images=2_000, code_dim=64, ica_components=64, ica_fit=5_000,
                      photo_conv_ablation=False, n_networks=1, n_rows=4),
        "full": dict(k=8, ks=(8, 32), n_units=3_000, n_random=3_000, n_ablate=1_000,
                     ablate_images=None, code_dim=256, ica_components=128, ica_fit=None,
                     photo_conv_ablation=True, n_networks=3, n_rows=4),
    },
    "04_lbfgs_mnist": {
        # quick: every table on a seeded 10,000-image subset with capped L-BFGS, 200 attacked
        # images per model; full: the paper's 60,000 (30,000 per half), L-BFGS to convergence
        # (the cap only guards against a stall), 10,000 attacked images per model.
        # n_untargeted: images per Figure 7 model also attacked towards all nine wrong labels.
        # quick's n_attack_split (Tables 3-4) and adv_per_round were 200 and 100 until the
        # chapter had to fit 150 s on the 2-core CPU (it took 162-182 s).
        "quick": dict(n_train=10_000, max_iter=150, ae_images=5_000, ae_max_iter=100,
                      n_attack=200, n_attack_split=120, batch_size=500, n_untargeted=0,
                      adv_rounds=2, adv_per_round=50, adv_max_iter=30, n_figure=20),
        "full": dict(n_train=None, max_iter=3_000, ae_images=None, ae_max_iter=400,
                     n_attack=10_000, n_attack_split=10_000, batch_size=2_500, n_untargeted=1_000,
                     adv_rounds=10, adv_per_round=2_000, adv_max_iter=200, n_figure=20),
    },
    "05_spectral": {
        # The MNIST CNN is trained as "mnist_cnn" says, the flowers CNN as "flowers_cnn" says.
        # power_*: AlexNet's and the
        # layers' power iterations; n_local: test images for the local constants (n_photos:
        # the flowers CNN's held-out photos, None: all of them, for its); n_ascent,
        # ascent_steps, ascent_power, climb_rounds: the bracket's input-space search (pair
        # ascent from the n_ascent steepest test images and as many noise images, the power
        # iterations at the points it reaches, then rounds of local search around them);
        # n_attack: correctly classified test images in the sandwich, each
        # attacked by L-BFGS towards attack_labels wrong labels (None: all nine) and refined
        # on the boundary (refine_steps rounds), the first n_check also by foolbox's DDN
        # (check_steps); margin_eps: the radii of Lipschitz-margin training, each followed by
        # the `matched` regularisers at the per-layer target that reaches the margin network's
        # bound, all trained with the plain CNN's schedule on compare_train of its digits
        # (None: all of them), beside a plain CNN trained on the same, for n_seeds training
        # seeds (seed, seed + 1, ...), each network attacked by DDN (attack_steps) at the same
        # images; eps: the certified-accuracy radii over the first n_certify test digits
        # (None: all 10,000), eps_table: those in the table and the verdicts (1.58: the
        # published radius).
        "quick": dict(margin_eps=(0.05,), matched=("rescale", "clip"), n_seeds=1,
                      compare_train=5_000, project_every=10, power_iters=30, power_tol=1e-4,
                      n_local=50, n_photos=16, n_ascent=4, ascent_steps=20, ascent_power=20, climb_rounds=5,
                      n_attack=50, attack_labels=3, attack_max_iter=12, c_rel_tol=0.5,
                      refine_steps=1, n_check=50, check_steps=60, attack_steps=50,
                      n_certify=5_000, sweep_cases=300,
                      eps=(0.0, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 1.58),
                      eps_table=(0.02, 0.1, 1.58)),
        "full": dict(margin_eps=(0.02, 0.05, 0.1), matched=("rescale", "clip"), n_seeds=3,
                     compare_train=None, project_every=10, power_iters=3_000, power_tol=1e-7,
                     n_local=1_000, n_photos=None, n_ascent=128, ascent_steps=500, ascent_power=300,
                     climb_rounds=20, n_attack=500,
                     attack_labels=None, attack_max_iter=300, c_rel_tol=0.01, refine_steps=30,
                     n_check=500, check_steps=1_000, attack_steps=1_000, n_certify=None,
                     sweep_cases=2_000, eps=(0.0, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 1.58),
                     eps_table=(0.02, 0.1, 1.58)),
    },
    "06_fooling_from_noise": {
        # The MNIST CNN itself is trained as "mnist_cnn" says. n_reference: training images in
        # the reference set; max_steps: the cap per label with the source's settings;
        # sweep_labels / sweep_steps: the labels and cap of the cost sweep and the design;
        # sweep_networks: independently trained CNNs the sweep runs on (seeds seed, seed + 1,
        # ...); transfer_epochs: the MLP's training; rounds, reject_labels, reject_train,
        # reject_budget, repeat, reject_digits, reject_epochs: the rejection-class rounds
        # (fooling images grown for reject_labels, those of reject_train added to
        # reject_digits training digits (None: all), each repeated `repeat` times, the others
        # held out; reject_epochs of training per round), always
        # beside the control rounds without fooling images; strong_labels / strong_steps:
        # the labels and cap of the run on to p >= 0.9999; reading_scales: the source's
        # coefficients times these under each reading of its costs (n_nearest: the reference
        # digits of the nearest reading); n_held: test digits in the distance control;
        # evolve_labels / evolve_runs / evolve_queries: the gradient-free search (runs per
        # label, query cap per run); n_detect: test digits on each side of the detector.
        "quick": dict(n_reference=1_000, max_steps=2_000, scales=(0.0, 1.0, 100.0, 10_000.0),
                      sweep_labels=(3, 0, 7), sweep_steps=300, sweep_networks=1,
                      design_labels=(3,), design_scales=(0.0, 10.0, 100.0),
                      design_min_steps=300, transfer_epochs=2,
                      rounds=1, reject_labels=(0, 3, 7), reject_train=(0, 3, 7),
                      reject_budget=1_000, repeat=20, reject_digits=5_000, reject_epochs=2,
                      n_noise=1_000,
                      strong_labels=(3,), strong_steps=3_000, reading_scales=(1.0,),
                      n_nearest=200, n_held=500, evolve_labels=(3,), evolve_runs=4,
                      evolve_queries=20_000, n_detect=1_000),
        "full": dict(n_reference=10_000, max_steps=5_000, scales=(0.0, 1.0, 10.0, 100.0,
                     1_000.0, 10_000.0), sweep_labels=tuple(range(10)), sweep_steps=3_000,
                     sweep_networks=3, design_labels=tuple(range(10)),
                     design_scales=(0.0, 1.0, 10.0, 100.0, 1_000.0), design_min_steps=1_000,
                     transfer_epochs=10,
                     rounds=5, reject_labels=tuple(range(10)), reject_train=(0, 2, 4, 6, 8),
                     reject_budget=5_000, repeat=20, reject_digits=None, reject_epochs=1,
                     n_noise=10_000,
                     strong_labels=tuple(range(10)), strong_steps=20_000,
                     reading_scales=(1.0, 100.0, 10_000.0), n_nearest=1_000, n_held=2_000,
                     evolve_labels=tuple(range(10)), evolve_runs=8, evolve_queries=100_000,
                     n_detect=5_000),
    },
    "07_attribution": {
        # quick: one epoch of Fashion-MNIST, the flowers at 64 px for 5 epochs and each binary
        # pair for 3; full: the source's scale (flowers at 256 px for its 40 epochs, Fashion
        # long enough for its 91%). every: updates between kept attribution frames;
        # n_attack: test images in the flip curves (None: all); n_sanity: images in the sanity
        # check; n_complete: images in the completeness table. min_*: the accuracy each network
        # must reach (an invariant): full asks for the source's 91% on Fashion-MNIST.
        "quick": dict(fashion_epochs=1, flower_size=64, flower_epochs=5, pair_epochs=3,
                      fashion_every=25, flower_every=12, n_attack=500, n_edges=500,
                      n_sanity=12, n_complete=20, ig_steps=50,
                      min_fashion=0.85, min_flowers=0.61, min_pair=0.6),
        "full": dict(fashion_epochs=15, flower_size=256, flower_epochs=40, pair_epochs=40,
                     fashion_every=250, flower_every=100, n_attack=None, n_edges=2_000,
                     n_sanity=64, n_complete=1_000, ig_steps=50,
                     min_fashion=0.91, min_flowers=0.61, min_pair=0.7),
    },
    "mnist_cnn": {
        # The MNIST CNN that chapters 3, 5 and 6 share (advtut.chapters.zoo.book_mnist_cnn): a seeded
        # subset of the training digits in quick, all 60,000 in full.
        "quick": dict(n_train=15_000, epochs=2),
        "full": dict(n_train=None, epochs=5),
    },
    "flowers_cnn": {
        # The flowers CNN that chapters 3 and 5 share (advtut.chapters.zoo.book_flowers_cnn):
        # photo size, widths (full: 256 units in the last feature layer, which chapter 3's
        # power calculation asks for) and epochs on the seeded training split.
        "quick": dict(size=64, widths=(16, 32, 64), epochs=5),
        "full": dict(size=128, widths=(32, 64, 256), epochs=30),
    },
}


def settings(chapter: str, profile: str) -> MappingProxyType:
    """The read-only settings of ``chapter`` in ``profile``; ``ValueError`` for unknown names."""
    if chapter not in PROFILES:
        raise ValueError(f"unknown chapter {chapter!r}; known: {sorted(PROFILES)}")
    table = PROFILES[chapter]
    if profile not in table:
        raise ValueError(f"profile must be one of {sorted(table)} for {chapter}, got {profile!r}")
    return MappingProxyType(dict(table[profile]))
