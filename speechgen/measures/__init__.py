"""Measures of a model and its audio: baselines, drift, generation quality."""
