"""Example fine-tuning configs (data; installed as ``constraintc.configs``)."""
