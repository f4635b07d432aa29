"""The rule library (data; installed as ``constraintc.rules``)."""
