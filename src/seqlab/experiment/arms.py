"""The experiment's arms: how each one starts and fine-tunes, and how the report draws it.

An arm is what the experiment's `inits` list names. Two of them (`ulmfit`, `probe`) are not a different
initialisation but the pretrained one fine-tuned with another strategy; the record says so explicitly.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    from_pretrained: bool  # starts from the family's pretrained language model (else fresh weights)
    strategy: str | None  # fine-tuning strategy it forces (None: the recipe's, `full` by default)
    title: str  # in tables and plot legends
    line_style: str  # matplotlib line style in the plots


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("pretrained", True, None, "pretrained", "-"),
        Arm("scratch", False, None, "scratch", "--"),
        # discriminative rates, slanted triangular schedule, gradual unfreezing
        Arm("ulmfit", True, "ulmfit", "ULMFiT", ":"),
        # only the new head trains on the frozen pretrained body: a linear probe of the pretrained features
        Arm("probe", True, "freeze_body", "linear probe", "-."),
    )
}
INITS = tuple(ARMS)
DEFAULT_INITS = ("pretrained", "scratch")
PRETRAINED_INITS = tuple(name for name, arm in ARMS.items() if arm.from_pretrained)
ARM_STRATEGIES = {name: arm.strategy for name, arm in ARMS.items()}
