"""Bundled corpora, usable by name as training data (`tunesmith corpus list | export`)."""
