"""Watching rollouts: recorded video and the live window under a virtual display."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from driving.video import read_video
from tests.support import assert_one_line_error

TINY = '{"vehicles_count": 8, "duration": 2}'


def test_record_writes_a_video_with_one_frame_per_decision(driving_cli, tmp_path):
    out = tmp_path / "clip.mp4"
    result = driving_cli(
        [
            "watch",
            "--agent",
            "idm",
            "--expert",
            "keep-lane",
            "--overrides",
            TINY,
            "--record",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    frames = read_video(out)
    assert frames.shape[0] == 10  # 2 s at 5 decisions/s
    assert frames.ndim == 4 and frames.shape[-1] == 3
    assert frames.std() > 10, "video frames are blank"
    assert "10 frames" in result.stdout


@pytest.fixture
def xvfb_display():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (scripts/test.sh installs it with apt-get)")
    display = f":{90 + os.getpid() % 100}"
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    assert proc.poll() is None, "Xvfb did not start"
    yield display
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.xvfb
def test_live_window_opens_shows_frames_and_closes(driving_cli, tmp_path, xvfb_display):
    snapshot = tmp_path / "window.png"
    result = driving_cli(
        [
            "watch",
            "--agent",
            "idm",
            "--expert",
            "none",
            "--overrides",
            TINY,
            "--fps",
            "50",
            "--snapshot",
            str(snapshot),
        ],
        env={"DISPLAY": xvfb_display},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "showed 10 frames" in result.stdout
    shown = imageio.imread(snapshot)
    assert shown.ndim == 3 and shown.shape[0] > 100 and shown.shape[1] > 300
    assert np.asarray(shown).std() > 10, "the window showed a blank frame"


def test_live_window_without_display_is_a_clear_error(driving_cli):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [*_driving(), "watch", "--agent", "idm", "--overrides", TINY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, "--record")


def _driving() -> list[str]:
    import sys

    return [sys.executable, "-m", "driving"]


@pytest.mark.parametrize(
    ("agent", "needle"),
    [("pilot", "unknown agent 'pilot'"), ("cnn:/missing/model.ckpt", "model.ckpt")],
)
def test_watch_bad_agent_is_a_clear_error(driving_cli, tmp_path, agent, needle):
    result = driving_cli(["watch", "--agent", agent, "--record", str(tmp_path / "x.mp4")])
    assert_one_line_error(result, needle)
