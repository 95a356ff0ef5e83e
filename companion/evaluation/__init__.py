"""Evaluating trained models: likelihood estimates, disentanglement and sample quality.

    from companion.evaluation.likelihood import importance_weighted        # IWAE bound on log p(x)
    from companion.evaluation.disentanglement import mig                   # Mutual Information Gap
    from companion.evaluation.samples import Yardstick                     # FD + classifier on samples
"""
