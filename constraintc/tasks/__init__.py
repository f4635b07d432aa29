"""Task generators (transitivity, d-separation), splits, shortcuts and prompt formats.

>>> from constraintc.tasks import generate
>>> records = generate("dsep", "train", 10, seed=0)
"""

from constraintc.tasks.generate import SPLITS, TASKS, generate, iter_records

__all__ = ["generate", "iter_records", "TASKS", "SPLITS"]
