"""paygate adapter for pokepay (in progress)."""
