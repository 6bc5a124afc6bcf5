"""Writing and reading rollout videos (mp4, H.264 through imageio's ffmpeg plugin)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from driving.files import check_output_location, replacing
from envs.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
"""File extensions :func:`write_video` writes (H.264 in an ffmpeg container)."""


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write ``(H, W, 3)`` uint8 RGB frames to ``path`` (mp4); returns the number written.

    Frame sizes are padded to even numbers (H.264 needs them) and must not change.
    """
    path = check_video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with replacing(path) as tmp:
        try:  # FFMPEG named: without its plugin imageio would pick another writer, fail later
            writer = imageio.get_writer(
                tmp,
                format="FFMPEG",
                fps=fps,
                codec="libx264",
                macro_block_size=1,
                quality=7,
                pixelformat="yuv420p",
            )
        except (ImportError, RuntimeError) as exc:
            raise UserError(f"cannot write {path}: {exc}") from None
        with writer:
            for frame in frames:
                writer.append_data(_even(frame))
                count += 1
    return count


def check_video_path(path: str | Path, what: str = "video path") -> Path:
    """``path`` if a video can be written there (a known extension, a writable location; see
    :func:`driving.files.check_output_location`), else a :class:`UserError`."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{what} {path} must end in .mp4 (or .mov/.mkv)")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder")
    check_output_location(path, what)
    return path


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video, ``(T, H, W, 3)`` uint8."""
    with imageio.get_reader(path) as reader:
        return np.stack([np.asarray(f) for f in reader])


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
    return np.ascontiguousarray(frame, dtype=np.uint8)
