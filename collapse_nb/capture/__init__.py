"""Capture training diagnostics from a live PyTorch loop into a file ``collapse_nb.load`` reads.

>>> from collapse_nb.capture import Recorder
>>> with Recorder(model, optimizer, "runs/x/capture.jsonl", every=10) as rec:   # doctest: +SKIP
...     for epoch in range(epochs):
...         for b, (x, y) in enumerate(loader):
...             pred = model(x); loss = loss_fn(pred, y)
...             rec.log_outputs(pred, y); rec.log(loss=loss, epoch=epoch, batch=b)
...             loss.backward(); optimizer.step(); optimizer.zero_grad()

The format (``collapse-capture``, JSON lines) is described in ``docs/capture.md``.
This package needs ``torch``; it writes files and never imports the readers.
"""
from .recorder import FORMAT_NAME, FORMAT_VERSION, Recorder

__all__ = ["Recorder", "FORMAT_NAME", "FORMAT_VERSION"]
