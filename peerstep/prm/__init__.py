"""Train a process reward model (PRM) on a ``peerstep export --format trl-prm`` dataset, with TRL's ``PRMTrainer``.

    from peerstep.prm import init_tiny, train_prm
    init_tiny("tiny-base", texts=["What is 6*7?"])           # a CI-sized base model, built offline
    result = train_prm("prm.jsonl", base="tiny-base", out="prm-ckpt", steps=20)
    result.losses                                              # the loss logged at each step

The trained checkpoint scores runs as a verifier: ``--verifier prm:prm-ckpt`` (``peerstep.verify`` has
``TransformersPRM``). Needs ``pip install 'peerstep[prm]'``.
"""

from peerstep.prm._tiny import init_tiny
from peerstep.prm._train import TrainResult, load_rows, train_prm

__all__ = ["TrainResult", "init_tiny", "load_rows", "train_prm"]
