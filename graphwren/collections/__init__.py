"""What users touch: lazy bags and blocked arrays."""
