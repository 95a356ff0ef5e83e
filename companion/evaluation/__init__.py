"""Evaluating trained models: likelihood estimates and disentanglement scores."""
