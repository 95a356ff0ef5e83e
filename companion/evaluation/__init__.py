"""Evaluating trained models: likelihood estimates, disentanglement, sample quality, the
split of the ELBO's gap, anomaly scores and comparisons over training seeds.

    from companion.evaluation.likelihood import importance_weighted        # IWAE bound on log p(x)
    from companion.evaluation.disentanglement import mig                   # Mutual Information Gap
    from companion.evaluation.samples import Yardstick                     # FD + classifier on samples
    from companion.evaluation.gaps import refine                           # q(z|x) fitted per image
    from companion.evaluation.anomaly import auroc, threshold_at           # inputs never seen
    from companion.evaluation.seeds import Spread, compare                 # mean, sd, t interval
"""
