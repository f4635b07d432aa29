"""The rules side of training is :class:`constraintc.semantic.SemanticLoss` (one binding for
training, evaluation and users' own loops); ``RulesConstraint`` is the name older code imports."""

from constraintc.semantic import GraphAtoms, SemanticLoss

RulesConstraint = SemanticLoss

__all__ = ["GraphAtoms", "RulesConstraint", "SemanticLoss"]
