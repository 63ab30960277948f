"""Scoring: `evaluate` (the evaluate stage's predictions and leaderboard files), `metrics`
(GLUE metrics), `timing` (the timing stage: size, latency, throughput) and `schema` (the
evaluation record the evaluate stage writes and the report reads).
"""
