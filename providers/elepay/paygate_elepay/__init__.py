"""paygate adapter for elepay (in progress)."""
