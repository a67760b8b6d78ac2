"""The optimizer set-up every family shares: weight decay on matrices only."""

from __future__ import annotations

from torch import nn

from tunesmith.training.config import OptimConfig
from tunesmith.training.objectives import LikelihoodObjective


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.linear, self.norm = nn.Embedding(5, 4), nn.Linear(4, 3), nn.LayerNorm(3)

    def loss(self, batch):
        return {"loss": self.norm(self.linear(self.embed(batch["tokens"]))).sum()}


def test_weight_decay_reaches_matrices_and_embeddings_but_not_biases_or_norm_gains():
    model = _Tiny()
    optimizer = LikelihoodObjective(model, OptimConfig(weight_decay=0.1)).optimizers["main"]
    decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert decay == {id(model.embed.weight), id(model.linear.weight)}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
