"""Lark grammars of the rules language (data; installed as ``constraintc.grammars``)."""
