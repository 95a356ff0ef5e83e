"""Evaluating trained models: likelihood estimates and disentanglement scores.

    from companion.evaluation.likelihood import importance_weighted        # IWAE bound on log p(x)
    from companion.evaluation.disentanglement import mig                   # Mutual Information Gap
"""
