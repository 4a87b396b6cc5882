"""paygate adapter for smaregi (in progress)."""
