"""paygate adapter for payjp (in progress)."""
