"""The behaviour-cloned CNN as an agent: ``--agent cnn:PATH``.

:class:`CnnAgent` runs one batched forward pass per decision over all the environments of a
rollout, on the policy's device (CUDA when available). It is stateless across steps (the frame
stack in the observation carries the motion; a ``speed_input`` network also reads the
speedometer, ``info["metrics"]["speed"]``); it keeps each slot's last observation so that
:meth:`CnnAgent.explain` can compute a VisualBackProp saliency map on demand (overlays, videos).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Agent
from agents.checkpoint import load_policy
from agents.networks import PolicyNetwork, count_parameters, visual_backprop
from envs.scenarios import Scenario


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class CnnAgent(Agent):
    """Drives with a policy network: ``(B, C, H, W)`` uint8 -> ``(B, A)`` actions in [-1, 1].

    Args:
        scenario: the scenario it drives (its specs must match the network's).
        network: the policy network (moved to ``device``; put in eval mode per decision).
        record: the checkpoint's ``"policy"`` record (or the equivalent for a network in
            training), for :meth:`describe`.
        path: the checkpoint file, if it came from one.
        device: where the forward pass runs (default: the network's device).
    """

    name = "cnn"

    @property
    def decides_in_worker(self) -> bool:  # type: ignore[override]
        """On the CPU the network decides inside each environment worker, one thread each
        (inference then overlaps the other workers' simulation and no batch crosses a
        process boundary); on a GPU it decides here, batched over the environments."""
        return self.device.type == "cpu"

    def __init__(
        self,
        scenario: Scenario,
        network: PolicyNetwork,
        record: dict[str, Any],
        path: str | Path | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(scenario)
        self.device = torch.device(device) if device else next(network.parameters()).device
        self.network = network.to(self.device)
        self.record = record
        self.path = None if path is None else str(path)
        self._last: dict[int, np.ndarray] = {}

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        self._last.pop(slot, None)

    @torch.inference_mode()
    def act_batch(
        self, obs: np.ndarray, infos: Sequence[dict[str, Any]], slots: Sequence[int]
    ) -> np.ndarray:
        """One forward pass over ``obs`` ``(B, C, H, W)`` uint8 -> ``(B, A)`` float32."""
        for i, slot in enumerate(slots):
            self._last[slot] = obs[i]
        was_training = self.network.training
        if was_training:  # a network in training (DAgger, closed-loop validation); walking the
            self.network.eval()  # module tree costs more than a small network's forward pass
        x = torch.from_numpy(np.ascontiguousarray(obs)).to(self.device, non_blocking=True)
        speed = None
        if self.network.config.speed_input:
            speed = torch.from_numpy(speedometer(infos)).to(self.device, non_blocking=True)
        out = self.network(x, speed).float().cpu().numpy()
        if was_training:
            self.network.train()
        return out.astype(np.float32)

    def limit_threads(self, threads: int) -> int | None:
        """On the CPU, run inference on ``threads`` intra-op threads (``torch.set_num_threads``,
        process-wide); on a GPU nothing changes."""
        if self.device.type != "cpu":
            return None
        previous = torch.get_num_threads()
        torch.set_num_threads(max(1, threads))
        return previous

    def saliency(self, obs: np.ndarray) -> np.ndarray:
        """VisualBackProp maps of ``(B, C, H, W)`` observations: ``(B, H, W)`` float in [0, 1]."""
        was_training = self.network.training
        self.network.eval()
        x = torch.from_numpy(np.ascontiguousarray(obs)).to(self.device)
        out = visual_backprop(self.network, x).float().cpu().numpy()
        self.network.train(was_training)
        return out

    def explain(self, slot: int = 0) -> dict[str, Any]:
        """``{"saliency": (H, W) float32 in [0, 1]}`` for the last observation of ``slot``."""
        obs = self._last.get(slot)
        if obs is None:
            return {}
        return {"saliency": self.saliency(obs[None])[0]}

    def describe(self) -> dict[str, Any]:
        return {
            "agent": self.name,
            "checkpoint": self.path,
            "network": self.record.get("network"),
            "training_frames": self.record.get("training_frames"),
            "expert_labels": self.record.get("expert_labels"),
            "dataset": self.record.get("dataset"),
            "trained_on_scenario": (self.record.get("scenario") or {}).get("name"),
            "device": str(self.device),
        }

    @property
    def parameters(self) -> int:
        return count_parameters(self.network)


def speedometer(infos: Sequence[dict[str, Any]]) -> np.ndarray:
    """``(B,)`` float32 ego speeds [m/s] from the environments' ``info["metrics"]["speed"]``."""
    try:
        return np.array([info["metrics"]["speed"] for info in infos], dtype=np.float32)
    except KeyError:
        raise ValueError("a speed_input network needs info['metrics']['speed']") from None


def make_cnn_agent(scenario: Scenario, path: str | None) -> CnnAgent:
    """The agent of checkpoint ``path`` for ``scenario`` (a :class:`UserError` on mismatch)."""
    device = default_device()
    checkpoint = load_policy(str(path), map_location="cpu")
    checkpoint.check_scenario(scenario)
    return CnnAgent(scenario, checkpoint.build(device), checkpoint.record, path=path)
