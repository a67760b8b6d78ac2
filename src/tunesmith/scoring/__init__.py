"""Measurements that need a trained network: likelihood of pieces under a checkpoint, the JSB
Chorales benchmark, embeddings, the token-model report.

`evaluation/` holds the torch-free metrics (models use some of them); this package sits beside
`training` and `generation`, above `models`, and imports neither of them.
"""
