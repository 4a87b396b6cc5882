"""paygate adapter for univapay (in progress)."""
