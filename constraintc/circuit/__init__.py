"""circuit stage."""
