"""Risk rules that run by themselves, in every mode: the intraday cut-off, MTM-loss limits."""
