"""The README's first command, end to end on tiny settings: collect, train, evaluate, compare."""

from __future__ import annotations

import json

from tests.support import TINY


def test_demo_collects_trains_evaluates_and_prints_the_table(driving_cli, tmp_path):
    args = ["demo", "--train-episodes", "3", "--episodes", "2", "--epochs", "1",
            "--overrides", json.dumps(TINY)]  # fmt: skip
    result = driving_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "runs/data/highway/manifest.json").read_text())
    assert manifest["counts"]["episodes"] == 3
    assert manifest["extra"]["collect"]["noise"] is not None  # DART recoveries in the data
    assert (tmp_path / "runs/bc_cpu_small/checkpoints/best.ckpt").is_file()
    report = (tmp_path / "runs/demo/report.md").read_text()
    assert "cnn:runs/bc_cpu_small/checkpoints/best.ckpt" in report
    for agent in ("cnn:runs/bc_cpu_small", "modular-oracle", "modular-vision", "idm"):
        assert agent in report and agent in result.stdout
    assert "Demo wall time" in report
    results = json.loads((tmp_path / "runs/demo/results.json").read_text())
    assert {r["summary"]["episodes"] for r in results} == {2}
    assert len({tuple(r["summary"]["seeds"]) for r in results}) == 1  # the same held-out seeds

    again = driving_cli(args, cwd=tmp_path)  # a second run reuses the data and the checkpoint
    assert again.returncode == 0, again.stderr[-3000:]
    assert "all 3 episodes already collected" in again.stdout
    assert "not training again" in again.stdout
