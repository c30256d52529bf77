"""Training AINN: Stage I (strength + disentanglement) and Stage II (multi-view consistency)."""
