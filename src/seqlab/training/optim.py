"""AdamW, learning-rate schedules and the ULMFiT fine-tuning tools, for every seqlab family.

Every family has the same shape: a body (``model.model``) holding token embeddings (plus positions
for Transformers), a ``layers`` stack (recurrent layers or Transformer blocks) and maybe a final norm,
then a head. ``layer_groups`` cuts any of them bottom-up, as the family's ``Family`` record names them,
into: embeddings, each layer, and the top (final norm and head). ULMFiT (Howard and Ruder, 2018) then gives each group its own learning rate
(lower layers hold more general features and move less), follows a slanted triangular schedule
(short warm-up, long decay) and unfreezes the groups one at a time from the top.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..errors import SeqlabUsageError


def layer_groups(model: nn.Module) -> list[list[tuple[str, nn.Parameter]]]:
    """Parameters cut bottom-up into [embeddings, layer 0, ..., layer L-1, top].

    The groups are the ones the model's ``Family`` record names: its ``ulmfit_bottom`` body modules
    (token and position embeddings), each layer of its ``layers_attribute`` stack, and its ``ulmfit_top``
    body modules (a final norm) with the head. A body parameter outside all of them is refused rather than
    guessed into a group. Parameters shared by two modules (tied embeddings) are listed once, in the lowest group.
    """
    from ..models import family_of_config

    body = getattr(model, "base_model", model)
    family = family_of_config(getattr(model, "config", None))
    layers = getattr(body, family.layers_attribute, None) if family is not None else None
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise SeqlabUsageError(
            f"{type(model).__name__} has no `layers` stack in its body, so it cannot be cut into layer groups "
            "for ULMFiT; use strategy full or freeze_body"
        )
    body_prefix = _prefix_of(model, body)
    groups: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(len(layers) + 2)]
    seen: set[int] = set()
    _add_modules(groups[0], seen, body, family.ulmfit_bottom, body_prefix)
    for index, layer in enumerate(layers):
        for name, param in layer.named_parameters(prefix=f"{body_prefix}{family.layers_attribute}.{index}"):
            _add(groups[index + 1], seen, name, param)
    _add_modules(groups[-1], seen, body, family.ulmfit_top, body_prefix)
    unplaced = [name for name, param in body.named_parameters(prefix=body_prefix.rstrip(".")) if id(param) not in seen]
    if unplaced:
        raise SeqlabUsageError(
            f"{type(model).__name__} has body parameters in no ULMFiT layer group ({', '.join(unplaced[:3])}); name "
            f"their module in the {family.name} Family record's ulmfit_bottom or ulmfit_top"
        )
    for name, param in model.named_parameters():  # the head: everything outside the body
        _add(groups[-1], seen, name, param)
    return [group for group in groups if group]


def _add_modules(group: list, seen: set[int], body: nn.Module, names: tuple[str, ...], body_prefix: str) -> None:
    for module_name in names:
        module = getattr(body, module_name, None)  # optional modules (position embeddings) may be absent
        if module is not None:
            for name, param in module.named_parameters(prefix=f"{body_prefix}{module_name}"):
                _add(group, seen, name, param)


def _prefix_of(model: nn.Module, body: nn.Module) -> str:
    if body is model:
        return ""
    for name, module in model.named_modules():
        if module is body:
            return f"{name}."
    return ""


def _add(group: list, seen: set[int], name: str, param: nn.Parameter) -> None:
    if id(param) not in seen:
        seen.add(id(param))
        group.append((name, param))


def _decays(name: str, param: nn.Parameter) -> bool:
    """Matrices (embeddings, projections, recurrent weights) are decayed; biases and norm scales are not."""
    return param.ndim >= 2


def parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    layer_lr_decay: float | None = None,
) -> list[dict]:
    """AdamW parameter groups: decay / no-decay, and with ``layer_lr_decay`` one pair per layer group.

    With discriminative learning rates the top group trains at ``learning_rate`` and group ``k``
    below the top at ``learning_rate / layer_lr_decay**k``. Every group records its
    ``layer_group`` index (0 = embeddings) so that gradual unfreezing can find it.
    """
    if layer_lr_decay is None:
        cut = [[(name, param) for name, param in model.named_parameters()]]
    else:
        cut = layer_groups(model)
    groups: list[dict] = []
    top = len(cut) - 1
    for index, members in enumerate(cut):
        lr = learning_rate if layer_lr_decay is None else learning_rate / layer_lr_decay ** (top - index)
        trainable = [(name, param) for name, param in members if param.requires_grad]
        for decay in (True, False):
            params = [param for name, param in trainable if _decays(name, param) == decay]
            if params:
                groups.append(
                    {
                        "params": params,
                        "weight_decay": weight_decay if decay else 0.0,
                        "lr": lr,
                        "layer_group": index,
                    }
                )
    if not groups:
        raise SeqlabUsageError("the model has no trainable parameters; check the fine-tuning strategy")
    return groups


def create_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    layer_lr_decay: float | None = None,
    device: torch.device | str | None = None,
) -> torch.optim.AdamW:
    """AdamW over ``parameter_groups``; the fused CUDA kernel when training on a GPU."""
    groups = parameter_groups(model, learning_rate, weight_decay, layer_lr_decay)
    fused = torch.device(device).type == "cuda" if device is not None else False
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, fused=fused or None)


def warmup_steps_for(num_training_steps: int, warmup_steps: int, warmup_ratio: float) -> int:
    """Explicit warmup steps win; otherwise a fraction of the run."""
    if warmup_steps and warmup_steps > 0:
        return int(warmup_steps)
    return int(math.ceil(num_training_steps * (warmup_ratio or 0.0)))


def create_scheduler(
    name: str, optimizer: torch.optim.Optimizer, num_training_steps: int, num_warmup_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A ``transformers.get_scheduler`` schedule (cosine, linear, constant_with_warmup, ...)."""
    from transformers import get_scheduler

    return get_scheduler(
        name, optimizer=optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps
    )


def slanted_triangular_schedule(
    optimizer: torch.optim.Optimizer, num_training_steps: int, cut_frac: float = 0.1, ratio: float = 32.0
) -> LambdaLR:
    """ULMFiT's slanted triangular learning rate: a linear rise for ``cut_frac`` of the steps, then a long
    linear decay; the lowest rate is the peak divided by ``ratio``.

    Each parameter group keeps its own peak (its discriminative learning rate); this is the multiplier.
    """
    if not 0.0 < cut_frac < 1.0:
        raise SeqlabUsageError(f"ulmfit_cut_frac must lie in (0, 1), got {cut_frac!r}")
    if ratio < 1.0:
        raise SeqlabUsageError(f"ulmfit_ratio must be >= 1, got {ratio!r}")
    cut = max(1, math.floor(num_training_steps * cut_frac))

    def multiplier(step: int) -> float:
        if step < cut:
            p = step / cut
        else:
            p = 1.0 - (step - cut) / max(1.0, cut * (1.0 / cut_frac - 1.0))
        p = min(max(p, 0.0), 1.0)
        return (1.0 + p * (ratio - 1.0)) / ratio

    return LambdaLR(optimizer, multiplier)


class GradualUnfreezing:
    """ULMFiT's gradual unfreezing: only the top layer group trains at first, one more group every
    ``unfreeze_every`` optimizer steps, from the top down.

    Frozen groups keep ``requires_grad`` (so a DDP wrapper built once stays valid); their gradients
    are dropped before each optimizer step, so AdamW neither moves nor decays them.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, unfreeze_every: int):
        if unfreeze_every <= 0:
            raise SeqlabUsageError(f"ulmfit_unfreeze_steps must be > 0, got {unfreeze_every!r}")
        self.optimizer = optimizer
        self.unfreeze_every = unfreeze_every
        self.num_groups = 1 + max(group.get("layer_group", 0) for group in optimizer.param_groups)

    def lowest_trainable_group(self, step: int) -> int:
        """Layer groups at or above this index train at optimizer step ``step`` (0-based)."""
        unfrozen = 1 + step // self.unfreeze_every
        return max(0, self.num_groups - unfrozen)

    def drop_frozen_gradients(self, step: int) -> None:
        lowest = self.lowest_trainable_group(step)
        for group in self.optimizer.param_groups:
            if group.get("layer_group", 0) < lowest:
                for param in group["params"]:
                    param.grad = None


def freeze(parameters: Iterable[nn.Parameter]) -> int:
    """Turn off gradients (a linear probe freezes the body); returns the number of values frozen."""
    count = 0
    for param in parameters:
        param.requires_grad_(False)
        count += param.numel()
    return count
