"""Self-describing policy checkpoints: everything ``cnn:PATH`` needs, nothing unpickled.

A checkpoint is a ``torch.save`` file holding only primitives and tensors, loadable with
``torch.load(path, weights_only=True)``. It is either a Lightning checkpoint written by
``driving fit`` (the training module adds the record below) or a bare one from
:func:`driving.train.checkpoint_io.save_policy`; both carry:

- ``"policy"``: the record of :func:`policy_record`: format version, scenario record
  (:meth:`~envs.scenarios.Scenario.to_dict`), observation and action specs, network kind and
  hyper-parameters, and the data it was trained on (``training_frames``, ``expert_labels``,
  dataset folder);
- ``"state_dict"``: the network's weights under the prefix ``network.``.

:func:`load_policy` turns every way a file can be wrong (missing, truncated, a pickle payload,
no policy record, a spec or control frequency that does not match the scenario) into a one-line
:class:`~envs.errors.UserError` naming the file.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.networks import NetworkConfig, PolicyNetwork, build_network
from envs.errors import UserError
from envs.scenarios import Scenario
from envs.spec import ActionSpec, ObservationSpec

FORMAT = 1
"""Version of the ``"policy"`` record."""
PREFIX = "network."
"""Prefix of the network's weights in ``state_dict`` (the training module's attribute name)."""


def policy_record(
    scenario: Scenario,
    network: NetworkConfig,
    *,
    training_frames: int,
    expert_labels: int,
    dataset: str | None = None,
) -> dict[str, Any]:
    """The ``"policy"`` record of a checkpoint (primitives only).

    Args:
        scenario: the scenario the training data came from (its specs bind the network).
        network: the network's hyper-parameters.
        training_frames: frames the network was fitted on (the training split).
        expert_labels: expert labels in the dataset it was trained from (all splits).
        dataset: the dataset folder, for the record.
    """
    return {
        "format": FORMAT,
        "scenario": scenario.to_dict(),
        "observation": scenario.observation.to_dict(),
        "action": scenario.action.to_dict(),
        "network": network.to_dict(),
        "training_frames": int(training_frames),
        "expert_labels": int(expert_labels),
        "dataset": None if dataset is None else str(dataset),
    }


@dataclass
class PolicyCheckpoint:
    """A loaded checkpoint.

    Attributes:
        path: the file.
        record: its ``"policy"`` record (see :func:`policy_record`).
        state_dict: the network weights (prefix removed).
        observation: the observation spec it was trained on.
        action: the action spec it was trained on.
        network: the network hyper-parameters.
        global_step: optimizer steps taken when it was written (0 for bare checkpoints).
        epoch: training epoch when it was written (0 for bare checkpoints).
    """

    path: Path
    record: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    observation: ObservationSpec
    action: ActionSpec
    network: NetworkConfig
    global_step: int = 0
    epoch: int = 0

    def check_scenario(self, scenario: Scenario) -> None:
        """A :class:`UserError` unless ``scenario`` has the observation and action specs and
        the control frequency (decisions per second, ``1 / dt``) the network was trained on."""
        trained = (self.record.get("scenario") or {}).get("policy_frequency")
        if trained is not None and trained != scenario.policy_frequency:
            raise UserError(
                f"checkpoint {self.path} was trained at {trained} decisions/s (dt "
                f"{1 / trained:.3g} s) but scenario {scenario.name!r} decides at "
                f"{scenario.policy_frequency}/s (dt {scenario.dt:.3g} s)"
            )
        if scenario.observation != self.observation:
            raise UserError(
                f"checkpoint {self.path} was trained on observations {self.observation.to_dict()}"
                f" but scenario {scenario.name!r} gives {scenario.observation.to_dict()}"
            )
        if scenario.action != self.action:
            raise UserError(
                f"checkpoint {self.path} was trained on actions {self.action.to_dict()}"
                f" but scenario {scenario.name!r} uses {scenario.action.to_dict()}"
            )

    def build(self, device: torch.device | str = "cpu") -> PolicyNetwork:
        """The network with its weights, in eval mode on ``device``."""
        network = build_network(self.network, self.observation.shape, self.action.size)
        try:
            network.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(
                f"checkpoint {self.path}: weights do not fit the network ({first})"
            ) from None
        return network.to(device).eval()


def check_checkpoint_file(path: str | Path) -> Path:
    """``path`` if it is a file in ``torch.save``'s format (a zip archive, whole), else a
    :class:`UserError` saying what it is instead (missing, a folder, truncated or not a
    checkpoint at all). Reads only the archive's directory: cheap for any size."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path} not found")
    if not path.is_file():
        raise UserError(f"checkpoint {path} is not a file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"checkpoint {path} is truncated or not a checkpoint (no torch.save zip)")
    return path


def load_policy(path: str | Path, map_location: str | torch.device = "cpu") -> PolicyCheckpoint:
    """Read a checkpoint written by ``driving fit`` or ``save_policy`` (never unpickles)."""
    path = check_checkpoint_file(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"checkpoint {path} holds Python objects that are not plain data; refusing to "
            "unpickle it"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise UserError(f"checkpoint {path} is truncated or not a checkpoint ({first})") from None
    record = data.get("policy") if isinstance(data, dict) else None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(
            f"checkpoint {path} has no policy record (format {FORMAT}); write it with driving fit"
        )
    try:
        observation = ObservationSpec.from_dict(record["observation"])
        action = ActionSpec.from_dict(record["action"])
        network = NetworkConfig.from_dict(record["network"])
    except (KeyError, TypeError, UserError) as exc:
        raise UserError(f"checkpoint {path} has a broken policy record ({exc})") from None
    state = {
        k[len(PREFIX) :]: v
        for k, v in (data.get("state_dict") or {}).items()
        if k.startswith(PREFIX)
    }
    if not state:
        raise UserError(f"checkpoint {path} holds no network weights")
    return PolicyCheckpoint(
        path=path,
        record=record,
        state_dict=state,
        observation=observation,
        action=action,
        network=network,
        global_step=int(data.get("global_step", 0)),
        epoch=int(data.get("epoch", 0)),
    )
