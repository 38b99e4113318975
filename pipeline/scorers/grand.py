"""GraNd (Paul et al. 2021): the mean over R proxy runs of the per-sample gradient norm
|| grad_w CE(f_w(x), y) ||_2, on the un-augmented samples, with the R proxies shared with EL2N.

``mode: last_layer`` (default, what DeepCore uses): w is the final linear layer z = W h + b only,
whose exact per-sample gradient is dW = (p - e_y) h^T, db = p - e_y, so
|| grad ||_2 = || p - e_y ||_2 * sqrt(|| h ||_2^2 + 1): one forward pass.
``mode: full``: w is every parameter of the network, each sample's gradient computed with
torch.func (vmap over grad of a functional call), ``chunk_size`` samples at a time so memory stays
bounded (chunk_size x number of parameters floats).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from pipeline.data import Split
from pipeline.errors import UserError
from pipeline.inference import predict_with_features
from pipeline.progress import progress_bar
from pipeline.scorers import SCORERS, ProxyParams, Scorer

MODES = ("last_layer", "full")


def last_layer_grad_norm(logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|| p - e_y ||_2 * sqrt(|| h ||_2^2 + 1): the norm of the CE gradient w.r.t. the final
    linear layer's weight and bias, from its logits z and its input h (float32)."""
    probs = F.softmax(logits.float(), dim=1)
    error = (probs - F.one_hot(labels, probs.shape[1]).float()).norm(dim=1)
    return error * (features.float().pow(2).sum(1) + 1).sqrt()


def full_grad_norm(model: nn.Module, split: Split, chunk_size: int, device: torch.device) -> torch.Tensor:
    """Per-sample || grad CE ||_2 over all parameters of ``model``, canonical order (CPU float32)."""
    # Eval mode: BatchNorm normalises with its running statistics, so a sample's loss depends on
    # that sample alone and its gradient is well defined (in train mode it would depend on the
    # rest of the batch, and vmap could not split it per sample).
    # Default (contiguous) memory format: vmap has no batching rule for some channels_last
    # strides and falls back to a slow per-sample loop.
    model.to(device).eval()
    params = {name: p.detach().contiguous() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits.float(), y.unsqueeze(0))

    per_sample_grads = vmap(grad(loss), in_dims=(None, 0, 0))
    norms = []
    for x, y, _ in progress_bar(split.batches(torch.arange(len(split)), chunk_size, device=device),
                            -(-len(split) // chunk_size), "per-sample gradients"):
        grads = per_sample_grads(params, x.contiguous(), y)
        norms.append(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()).sqrt())
    return torch.cat(norms).cpu()


@SCORERS.register("grand")
class GraNd(Scorer):
    needs = frozenset({"proxies"})

    @dataclass(frozen=True)
    class Params(ProxyParams):
        mode: str = "last_layer"  # "last_layer" (exact final-layer gradient, DeepCore) or "full"
        chunk_size: int = 64  # samples per vmap call in mode "full"

        def __post_init__(self):
            if self.mode not in MODES:
                raise UserError(f"grand mode must be one of {', '.join(MODES)}, got {self.mode!r}")
            if self.chunk_size < 1:
                raise UserError(f"grand chunk_size must be at least 1, got {self.chunk_size}")

    def score(self, ctx):
        split = ctx.data.train
        runs = []
        for proxy in ctx.proxies:
            if self.params.mode == "full":
                runs.append(full_grad_norm(proxy, split, self.params.chunk_size, ctx.device))
            else:
                logits, features = predict_with_features(proxy, split, ctx.batch_size, ctx.device)
                runs.append(last_layer_grad_norm(logits, features, split.labels))
        return torch.stack(runs).double().mean(0).numpy()
