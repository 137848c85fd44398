"""Multi-task pretraining (MP, METHOD.md): pretrain the representation with a K-output head
on the EIP energies of the unlabelled pool, then fine-tune it on DFT energies.

    targets.py   EIP energies of a split as training rows, masked reference energies
    objective.py the masked multi-task loss and the validation metric on EIP energies
    cache.py     the pretrained-checkpoint folder, keyed by what makes the weights
    pretrain.py  pretraining itself (reused when the same pretraining was done before)
    finetune.py  fresh head + pretrained representation; strategies ``mp`` and ``mp+la``
"""
from .finetune import initializer, load_representation, representation_hash, run_mp, run_mp_la
from .pretrain import Pretrained, pretrain

__all__ = [
    "Pretrained", "initializer", "load_representation", "pretrain", "representation_hash",
    "run_mp", "run_mp_la",
]
