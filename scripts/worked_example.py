"""Walk through the seed's worked example (000, Part 1) with the real RecurrentForCausalLM.

    python scripts/worked_example.py

Prints h_1, h_2, h_3, the logits, the softmax, the loss and the first BPTT gradients computed by the
model and autograd, next to the seed's numbers; exits 1 if any differs by more than 1e-3.
"""

from seqlab.diagnostics.cli import worked_example_main
from seqlab.errors import run_cli

if __name__ == "__main__":
    run_cli(worked_example_main)
