"""Speed benchmarks: `python -m benchmarks.speed` (see README, "Speed")."""
