"""Optimizers, learning-rate schedulers and gradient clipping, with torch.optim's names and math.

from scratchnet.optim import SGD, Adam, AdamW, OneCycleLR, clip_grad_norm_

optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
scheduler = OneCycleLR(optimizer, max_lr=1e-2, total_steps=len(loader) * epochs)
for x, y in loader:
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    scheduler.step()
"""

from scratchnet.optim import lr_scheduler
from scratchnet.optim.adam import Adam, AdamW
from scratchnet.optim.clip import clip_grad_norm_
from scratchnet.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from scratchnet.optim.optimizer import Optimizer
from scratchnet.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "OneCycleLR",
    "Optimizer",
    "StepLR",
    "clip_grad_norm_",
    "lr_scheduler",
]
