"""Checkpoint files that are never half-written: write beside, flush, then rename.

Lightning's own ``TorchCheckpointIO`` rewrites ``last.ckpt`` in place, so a full disk or a kill
in the middle of a save destroys the previous checkpoint too. :class:`AtomicCheckpointIO`
writes the new checkpoint to a temporary file in the same folder, flushes it to disk and only
then replaces the old one (``os.replace`` is atomic on POSIX): a failed save leaves the previous
checkpoint as it was, and the temporary file is removed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with write-then-rename saves (local paths)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(buffer.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
