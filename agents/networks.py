"""Policy networks: pixels ``(B, C, H, W)`` -> normalised actions ``(B, A)`` in [-1, 1].

==============  ==========================================================================
kind            network
==============  ==========================================================================
``pilotnet``    NVIDIA's PilotNet (Bojarski et al. 2016, "End to End Learning for
                Self-Driving Cars"): fixed input normalisation, 5 convolutions
                (3 of 5x5 stride 2, 2 of 3x3), then fully connected layers 100-50-10
                and the output layer. The default.
``resnet``      a small residual network: a 5x5 stride-2 stem, three stages of one basic
                residual block each (stride 2), pooled to a coarse grid that keeps
                *where* things are, then the same fully connected head.
==============  ==========================================================================

With ``speed_input`` the ego car's speedometer reading ``(B,)`` [m/s] (divided by
:data:`SPEED_SCALE`) joins the image features at the head, as in conditional imitation learning
(Codevilla et al. 2018, "End-to-end Driving via Conditional Imitation Learning"): a bird's-eye
view centred on the ego car shows the other cars' motion relative to it, but not its own speed,
which car following needs. modular-vision reads the same speedometer.

Both take any :class:`~envs.spec.ObservationSpec` shape: the 5x5 convolutions are padded
(``padding=2``) so that even a 16 x 16 input keeps a feature map; the original PilotNet used
unpadded convolutions on a 66 x 200 RGB image. Inputs may be ``uint8`` or float in [0, 255]
(augmentation hands floats); the first layer maps them to about [-1, 1].

Both expose :meth:`PolicyNetwork.feature_maps`, the post-ReLU maps of each convolutional stage,
which :func:`visual_backprop` turns into a saliency map (Bojarski et al. 2017, "VisualBackProp:
efficient visualization of CNNs").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from envs.errors import UserError

SPEED_SCALE: float = 30.0
"""Speed [m/s] that maps to 1.0 at the input of a ``speed_input`` network."""


@dataclass
class NetworkConfig:
    """Hyper-parameters of a policy network (stored in checkpoints as a plain dict).

    Args:
        kind: ``"pilotnet"`` (default) or ``"resnet"``.
        width: multiplier on every convolution's channel count (1.0 = the paper's 24-36-48-64-64
            for PilotNet, 32-64-128 for the residual network).
        hidden: sizes of the fully connected layers before the output layer.
        dropout: dropout probability before each fully connected layer (0 disables it).
        speed_input: also read the ego speed [m/s] (see the module docstring).
    """

    kind: Literal["pilotnet", "resnet"] = "pilotnet"
    width: float = 1.0
    hidden: list[int] = field(default_factory=lambda: [100, 50, 10])
    dropout: float = 0.0
    speed_input: bool = False

    def __post_init__(self) -> None:
        if self.kind not in NETWORKS:
            raise UserError(f"network kind must be one of {sorted(NETWORKS)}, got {self.kind!r}")
        if not self.width > 0:
            raise UserError(f"network width must be > 0, got {self.width!r}")
        if any(int(h) < 1 for h in self.hidden):
            raise UserError(f"network hidden sizes must be positive, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"network dropout must be in [0, 1), got {self.dropout!r}")
        self.hidden = [int(h) for h in self.hidden]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready (and ``weights_only``-loadable) dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Rebuild from :meth:`to_dict` output (unknown keys are a :class:`UserError`)."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"unknown network key(s) {sorted(unknown)}")
        return cls(**data)


def _channels(base: int, width: float) -> int:
    return max(1, round(base * width))


def _head(in_features: int, hidden: list[int], action_size: int, dropout: float) -> nn.Sequential:
    # The Flatten is a no-op on the flat features it gets; it keeps the layer indices (and so the
    # state_dict keys) of checkpoints written before the speed input existed.
    layers: list[nn.Module] = [nn.Flatten()]
    size = in_features
    for h in hidden:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(size, h), nn.ReLU(inplace=True)]
        size = h
    layers += [nn.Linear(size, action_size), nn.Tanh()]
    return nn.Sequential(*layers)


class PolicyNetwork(nn.Module):
    """Base of the policy networks.

    Args:
        config: the hyper-parameters.
        observation_shape: ``(C, H, W)`` of the observations.
        action_size: ``A``, the number of action components.
    """

    def __init__(
        self, config: NetworkConfig, observation_shape: tuple[int, int, int], action_size: int
    ) -> None:
        super().__init__()
        self.config = config
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.action_size = int(action_size)
        self.stages = nn.ModuleList()
        self.pool: nn.Module = nn.Identity()
        self.head: nn.Module = nn.Identity()

    @staticmethod
    def normalise(obs: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` pixels in [0, 255] (uint8 or float) -> float in [-1, 1]."""
        return obs.float() / 127.5 - 1.0

    def feature_maps(self, obs: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU outputs of each convolutional stage, shallow first: ``(B, C_i, H_i, W_i)``."""
        x = self.normalise(obs)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, obs: torch.Tensor, speed: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` pixels (and ``(B,)`` ego speeds [m/s] if ``speed_input``) ->
        ``(B, A)`` actions in [-1, 1]."""
        x = self.normalise(obs)
        for stage in self.stages:
            x = stage(x)
        features = self.pool(x).flatten(1)
        if self.config.speed_input:
            if speed is None:
                raise ValueError("this network reads the ego speed: pass speed (B,) [m/s]")
            scaled = speed.to(features.device, features.dtype).reshape(-1, 1) / SPEED_SCALE
            features = torch.cat([features, scaled], dim=1)
        return self.head(features)

    def _finish(self) -> None:
        """Build the head once the stages exist (its input size comes from a dry run)."""
        self.eval()
        with torch.no_grad():
            out = self.pool(self.feature_maps(torch.zeros(1, *self.observation_shape))[-1])
        self.train()
        size = out[0].numel() + int(self.config.speed_input)
        self.head = _head(size, self.config.hidden, self.action_size, self.config.dropout)


class PilotNet(PolicyNetwork):
    """NVIDIA's PilotNet on a ``(C, H, W)`` stack: 5 convolutions, then 100-50-10 and ``A``.

    At the default ``(4, 64, 160)`` the feature maps are 32x80, 16x40, 8x20, 8x20, 8x20.
    """

    def __init__(
        self, config: NetworkConfig, observation_shape: tuple[int, int, int], action_size: int
    ) -> None:
        super().__init__(config, observation_shape, action_size)
        c_in = self.observation_shape[0]
        convs = [(24, 5, 2, 2), (36, 5, 2, 2), (48, 5, 2, 2), (64, 3, 1, 1), (64, 3, 1, 1)]
        for base, kernel, stride, pad in convs:
            c_out = _channels(base, config.width)
            self.stages.append(
                nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, pad), nn.ReLU(inplace=True))
            )
            c_in = c_out
        self._finish()


class _BasicBlock(nn.Module):
    """He et al. 2016 basic block: two 3x3 convolutions with batch norm and a skip path."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x), inplace=True)


class ResNetPolicy(PolicyNetwork):
    """A small residual network: stem, three residual stages, a coarse pooled grid, the head.

    The last stage is average-pooled to at most 4 x 8 cells (not to 1 x 1) so that the head
    still knows where in the image a car or a lane marking is.
    """

    def __init__(
        self, config: NetworkConfig, observation_shape: tuple[int, int, int], action_size: int
    ) -> None:
        super().__init__(config, observation_shape, action_size)
        c_in = self.observation_shape[0]
        stem = _channels(32, config.width)
        self.stages.append(
            nn.Sequential(
                nn.Conv2d(c_in, stem, 5, 2, 2, bias=False),
                nn.BatchNorm2d(stem),
                nn.ReLU(inplace=True),
            )
        )
        c_in = stem
        for base in (32, 64, 128):
            c_out = _channels(base, config.width)
            self.stages.append(_BasicBlock(c_in, c_out, stride=2))
            c_in = c_out
        _, h, w = self.observation_shape
        self.pool = nn.AdaptiveAvgPool2d((min(4, -(-h // 16)), min(8, -(-w // 16))))
        self._finish()


NETWORKS: dict[str, type[PolicyNetwork]] = {"pilotnet": PilotNet, "resnet": ResNetPolicy}
"""Network classes by :attr:`NetworkConfig.kind`."""


def build_network(
    config: NetworkConfig | dict[str, Any],
    observation_shape: tuple[int, int, int],
    action_size: int,
) -> PolicyNetwork:
    """The network of ``config`` for ``(C, H, W)`` observations and ``A`` action components."""
    if isinstance(config, dict):
        config = NetworkConfig.from_dict(config)
    return NETWORKS[config.kind](config, observation_shape, action_size)


def count_parameters(network: nn.Module) -> int:
    """Number of learned parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


@torch.no_grad()
def visual_backprop(network: PolicyNetwork, obs: torch.Tensor) -> torch.Tensor:
    """VisualBackProp saliency: which input pixels drive the decision, ``(B, H, W)`` in [0, 1].

    Each stage's feature maps are averaged over channels; starting from the deepest, the
    running mask is upsampled to the next shallower stage's size and multiplied with its
    averaged map, down to the input resolution (Bojarski et al. 2017; bilinear upsampling
    stands in for their fixed deconvolution). Each mask is normalised per image to [0, 1].

    Args:
        network: the policy network.
        obs: ``(B, C, H, W)`` pixels.
    """
    maps = [m.mean(dim=1, keepdim=True) for m in network.feature_maps(obs)]
    mask = maps[-1]
    for shallower in reversed(maps[:-1]):
        mask = F.interpolate(mask, size=shallower.shape[-2:], mode="bilinear", align_corners=False)
        mask = mask * shallower
    mask = F.interpolate(mask, size=obs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = mask.amin(dim=(1, 2), keepdim=True)
    high = mask.amax(dim=(1, 2), keepdim=True)
    return ((mask - low) / (high - low).clamp_min(1e-12)).clamp(0.0, 1.0)
