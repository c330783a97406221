"""PyTorch twins of scratchnet's models, a PyTorch training CLI and checkpoint conversion.

The reference exists to check scratchnet against a framework everyone trusts:

    reference.models    LinearClassifier and CNNClassifier in torch.nn, with scratchnet's module
                        tree, state_dict keys and initialisation
    reference.train     `python -m reference.train`: scratchnet's training CLI on torch, with the
                        same options, batches and output files
    reference.convert   scratchnet .npz checkpoints <-> torch state_dicts (.pt)

It needs PyTorch (`pip install -e '.[reference]'`); scratchnet itself never imports it.
"""

from reference.models import MODELS, CNNClassifier, LinearClassifier, build_model

__all__ = ["MODELS", "CNNClassifier", "LinearClassifier", "build_model"]
