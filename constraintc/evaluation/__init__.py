"""Evaluation: metrics that expose collapse, shortcut baselines, trace checks, reports and plots.

>>> from constraintc.evaluation.metrics import compute_report
"""
