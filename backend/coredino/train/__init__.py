"""Self-supervised training of core-dino backbones (dense DINO, clean teacher vs degraded student).

Entry points: :class:`~coredino.train.trainer.Trainer` (Python) and ``coredino train``
(:func:`~coredino.train.commands.add_train_parser`). See ``docs/training.md``.
"""

from .config import TrainConfig

__all__ = ["TrainConfig"]
