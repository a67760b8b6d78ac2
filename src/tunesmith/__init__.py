"""tunesmith: train, compare and play deep music generators.

Data flows one way: io -> representations -> data -> models -> training / generation -> cli.
`core`, `io`, `representations` and `evaluation` never import torch.
"""

__version__ = "0.1.0"
