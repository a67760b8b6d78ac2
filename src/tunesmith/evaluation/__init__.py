"""Measuring music: per-piece metrics, set-versus-set comparison, a memorization check, reports.

Modules, from the bottom up (none imports torch; nothing is imported here, so importing one stays cheap):
`timeline` (bars, overlaps, skylines), `metrics` and `rhythm` (per-piece metrics, the `METRICS` registry),
`features` (feature tables of sets, per-instrument-group features, halves), `density` (distances, KDE,
overlap, KL, Frechet), `compare` (Yang & Lerch set comparison, MidiNet PCH KL, hooks for embeddings and
NLL), `memorization` (n-gram copy check), `runs` (piece sets, run folders, one evaluation), `tables`,
`plots` and `report` (the side-by-side table, figures, HTML and JSON), `provenance` (what made a generated
set). Metrics that need a network (NLL, embeddings) come in as functions from `tunesmith.scoring`.
"""
