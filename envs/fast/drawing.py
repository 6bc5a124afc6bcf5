"""The observation viewer with the lane markings' geometry computed at once.

highway-env's ``RoadGraphics.display`` spends most of an observation frame computing, stripe by
stripe, the world and pixel coordinates of the lane markings (``lane.position``, ``vec2pix``).
:class:`FastLaneViewer` computes the same coordinates for all stripes of a lane side with the
same arithmetic, element-wise (:mod:`envs.fast.geometry`), and then issues the stock sequence of
pygame calls with exactly the same integer arguments, less the stripes that lie wholly outside the
frame (on a winding road most of them: the stock draws every stripe within
``2 * (width + height)`` pixels of the origin along every lane), so the frames are
pixel-identical; it also leaves out of the per-vehicle drawing calls the vehicles far outside the
frame, which the stock calls skip anyway. It applies to offscreen viewers (the observation's) of
roads whose lanes are all straight, sine or circular; any other case, or any display option
(trajectories, agent display, saved images, history), draws with the stock viewer."""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import numpy as np
import pygame
from highway_env.envs.common.graphics import EnvViewer, ObservationGraphics
from highway_env.envs.common.observation import GrayscaleObservation
from highway_env.road.graphics import LaneGraphics, RoadGraphics, WorldSurface
from highway_env.road.lane import LineType
from highway_env.vehicle.dynamics import BicycleVehicle
from highway_env.vehicle.graphics import VehicleGraphics
from highway_env.vehicle.kinematics import Vehicle

from envs.fast.geometry import LaneGeometry

NEAR_FRAME_PX = 60
"""Margin [px] around the frame within which vehicles are handed to ``VehicleGraphics``."""


@dataclass(frozen=True)
class MarkingPlan:
    """The lane sides of a road that carry markings, in the stock drawing order (lane by lane in
    network order, left side then right): what ``LaneGraphics.display`` draws on each, whatever
    the frame.

    Attributes:
        lane: ``(k,)`` lane numbers (network order) of the marked sides.
        lateral: ``(k,)`` lateral offset of the marking [m]: ``(side - 0.5) * lane.width_at(s)``
            (the covered lanes have a constant width).
        stripe: ``(k,)`` length of a stripe [m] (``STRIPE_LENGTH`` striped, ``STRIPE_SPACING``
            continuous; unused for a continuous line).
        line: ``(k,)`` whether the side is one ``CONTINUOUS_LINE`` (a single stripe).
    """

    lane: np.ndarray
    lateral: np.ndarray
    stripe: np.ndarray
    line: np.ndarray

    @classmethod
    def of(cls, geometry: LaneGeometry) -> MarkingPlan:
        """The plan of ``geometry``'s lanes (their ``line_types``)."""
        stripe_of = {
            LineType.STRIPED: LaneGraphics.STRIPE_LENGTH,
            LineType.CONTINUOUS: LaneGraphics.STRIPE_SPACING,
            LineType.CONTINUOUS_LINE: 0.0,
        }
        rows = [
            (lane.number, (side - 0.5) * lane.lane.width, stripe_of[kind], kind)
            for lane in geometry.lanes
            for side, kind in enumerate(lane.lane.line_types)
            if kind in stripe_of
        ]
        return cls(
            lane=np.array([r[0] for r in rows], dtype=int),
            lateral=np.array([r[1] for r in rows], dtype=float),
            stripe=np.array([r[2] for r in rows], dtype=float),
            line=np.array([r[3] == LineType.CONTINUOUS_LINE for r in rows], dtype=bool),
        )


_PLANS: weakref.WeakKeyDictionary[LaneGeometry, MarkingPlan] = weakref.WeakKeyDictionary()
"""Each road geometry's :class:`MarkingPlan`, made on its first frame."""


def draw_lanes(geometry: LaneGeometry, surface: WorldSurface) -> None:
    """``RoadGraphics.display``: the grey ground and every lane's markings, all stripes of all
    lanes computed at once and drawn in the stock order, less the stripes whose two ends lie
    beyond the same edge of the frame by more than the line width (``pygame.draw.line`` draws
    nothing of those).

    Each lane's first stripe ``s0`` is computed from its ``local_coordinates`` of the frame's
    origin with the stock Python scalar arithmetic (``int(s) // spacing``: float floor
    division); the stripes' ends ``s0 + k * spacing (+ stripe)`` element-wise as the stock
    ``np.arange`` expressions, so every endpoint is the stock one."""
    surface.fill(surface.GREY)
    plan = _PLANS.get(geometry)
    if plan is None:
        plan = _PLANS[geometry] = MarkingPlan.of(geometry)
    if not len(plan.lane):
        return
    spacing = LaneGraphics.STRIPE_SPACING
    stripes_count = int(
        2 * (surface.get_height() + surface.get_width()) / (spacing * surface.scaling)
    )
    origin = np.array(surface.origin, dtype=float)
    s_origin, _ = geometry.local_all(origin[:1], origin[1:])
    half = stripes_count // 2
    s0_lane = np.array([(int(s) // spacing - half) * spacing for s in s_origin[:, 0].tolist()])
    s0 = s0_lane[plan.lane]
    start = s0[:, None] + (np.arange(stripes_count) * spacing)[None, :]
    end = start + plan.stripe[:, None]
    if plan.line.any():  # one stripe: s0 + 0 * spacing to s0 + count * spacing + length
        start[plan.line, 0] = s0[plan.line] + 0 * spacing
        end[plan.line, 0] = s0[plan.line] + stripes_count * spacing + LaneGraphics.STRIPE_LENGTH
    length = geometry.length[plan.lane][:, None]
    start = np.clip(start, 0, length)
    end = np.clip(end, 0, length)
    drawn = np.abs(start - end) > 0.5 * LaneGraphics.STRIPE_LENGTH
    drawn[plan.line, 1:] = False
    rows, _ = np.nonzero(drawn)
    lane_of, lat = plan.lane[rows], plan.lateral[rows]
    n = len(rows)
    x, y = geometry.position(
        np.concatenate([lane_of, lane_of]),
        np.concatenate([start[drawn], end[drawn]]),
        np.concatenate([lat, lat]),
    )
    ox, oy = surface.origin[0], surface.origin[1]
    px = ((x - ox) * surface.scaling).astype(int)
    py = ((y - oy) * surface.scaling).astype(int)
    x0, y0, x1, y1 = px[:n], py[:n], px[n:], py[n:]
    width = max(surface.pix(LaneGraphics.STRIPE_WIDTH), 1)
    low = -(width + 2)
    right, bottom = surface.get_width() + width + 2, surface.get_height() + width + 2
    keep = ~(
        ((x0 < low) & (x1 < low))
        | ((y0 < low) & (y1 < low))
        | ((x0 > right) & (x1 > right))
        | ((y0 > bottom) & (y1 > bottom))
    )
    for a, b, c, d in zip(
        x0[keep].tolist(), y0[keep].tolist(), x1[keep].tolist(), y1[keep].tolist(), strict=True
    ):
        pygame.draw.line(surface, surface.WHITE, (a, b), (c, d), width)


def _near_frame(vehicles: list, surface: WorldSurface) -> list:
    """The vehicles whose centre is within ``NEAR_FRAME_PX`` of the frame: a superset of those
    ``VehicleGraphics.display`` draws (it skips centres more than 50 px outside)."""
    if not vehicles:
        return []
    xy = (np.array([v.position for v in vehicles], dtype=float) - surface.origin) * surface.scaling
    near = (
        np.abs(xy[:, 0] - surface.get_width() / 2) < surface.get_width() / 2 + NEAR_FRAME_PX
    ) & (np.abs(xy[:, 1] - surface.get_height() / 2) < surface.get_height() / 2 + NEAR_FRAME_PX)
    return [v for v, keep in zip(vehicles, near.tolist(), strict=True) if keep]


TIRE_LENGTH_M, HEADLIGHT_LENGTH_M, HEADLIGHT_WIDTH_M = 1, 0.72, 0.6
"""``VehicleGraphics.display``'s local sizes, for the same sprite rectangles."""
_WITH_TIRES = (Vehicle, BicycleVehicle)
"""The classes whose sprite ``VehicleGraphics.display`` draws with steered tires (not cached)."""


@functools.lru_cache(maxsize=256)
def _vehicle_sprite(
    body: tuple[int, int, int, int],
    lights: tuple[tuple[int, int, int, int], tuple[int, int, int, int]],
    side_px: int,
    color: tuple,
) -> pygame.Surface:
    """The unrotated sprite ``VehicleGraphics.display`` draws for a vehicle without tires (same
    calls, same integer rectangles [px]); treat it as read-only (it is shared)."""
    sprite = pygame.Surface((side_px, side_px), flags=pygame.SRCALPHA)
    pygame.draw.rect(sprite, color, body, 0)
    for rect in lights:
        pygame.draw.rect(sprite, VehicleGraphics.lighten(color), rect, 0)
    pygame.draw.rect(sprite, VehicleGraphics.BLACK, body, 1)
    return sprite


def draw_vehicle(vehicle: Vehicle, surface: WorldSurface) -> None:
    """``VehicleGraphics.display(vehicle, surface, offscreen=True)``, reusing the unrotated
    sprite of vehicles of the same size and colour (a fresh surface drawn with the same rects
    holds the same pixels, and ``blit_rotate`` only reads it); vehicles drawn with tires go
    through the stock method."""
    if type(vehicle) in _WITH_TIRES:
        VehicleGraphics.display(vehicle, surface, offscreen=True)
        return
    if not surface.is_visible(vehicle.position):
        return
    pix = surface.pix
    length, width = vehicle.LENGTH + 2 * TIRE_LENGTH_M, vehicle.WIDTH
    light_x = pix(TIRE_LENGTH_M + vehicle.LENGTH - HEADLIGHT_LENGTH_M)
    light_size = (pix(HEADLIGHT_LENGTH_M), pix(HEADLIGHT_WIDTH_M))
    sprite = _vehicle_sprite(
        (pix(TIRE_LENGTH_M), pix(length / 2 - width / 2), pix(vehicle.LENGTH), pix(width)),
        (
            (light_x, pix(length / 2 - (1.4 * width) / 3), *light_size),
            (light_x, pix(length / 2 + (0.6 * width) / 5), *light_size),
        ),
        pix(length),
        tuple(VehicleGraphics.get_color(vehicle, False)),
    )
    h = vehicle.heading if abs(vehicle.heading) > 2 * np.pi / 180 else 0
    position = [*surface.pos2pix(vehicle.position[0], vehicle.position[1])]
    VehicleGraphics.blit_rotate(surface, sprite, position, np.rad2deg(-h))


class FastLaneViewer(EnvViewer):
    """An :class:`EnvViewer` whose offscreen frames draw the lanes with :func:`draw_lanes` and
    only the vehicles near the frame (in road order, as the stock) with :func:`draw_vehicle`."""

    def display(self) -> None:
        geometry = getattr(self.env.road, "geometry", None)
        if (
            geometry is None
            or not self.enabled
            or not self.offscreen
            or self.vehicle_trajectory
            or EnvViewer.agent_display
            or self.SAVE_IMAGES
            or self.env.road.record_history
        ):
            super().display()
            return
        surface = self.sim_surface
        surface.move_display_window_to(self.window_position())
        draw_lanes(geometry, surface)
        RoadGraphics.display_road_objects(self.env.road, surface, offscreen=True)
        for vehicle in _near_frame(self.env.road.vehicles, surface):
            draw_vehicle(vehicle, surface)
        ObservationGraphics.display(self.env.observation_type, surface)


RGB_MASKS = (0xFF0000, 0x00FF00, 0x0000FF)
"""The pixel format (red, green, blue masks of a 32-bit surface) :class:`GrayPalette` reads."""


class GrayPalette:
    """``GrayscaleObservation``'s conversion ``np.dot(rgb, weights).clip(0, 255).astype(uint8)``
    as a lookup table over 24-bit colours, filled colour by colour as frames bring new ones.

    Each colour's entry is computed by the stock expression itself, on a ``(1, k, 3)`` uint8
    array laid out as the stock ``(W, H, 3)`` frame (C order, channels last), so ``np.dot`` runs
    the same per-pixel dot product on it (numpy's N-d ``dot`` loop, a BLAS ``ddot`` of 3
    contiguous doubles) and every entry is the stock value. A frame holds a few colours (the
    ground, markings, vehicle bodies, outlines and lights: no anti-aliasing), so after the first
    frames a conversion is two table look-ups.

    Args:
        weights: the observation's RGB weights (3 floats).
    """

    def __init__(self, weights: tuple[float, ...]) -> None:
        self.weights = list(weights)
        # np.zeros maps untouched pages lazily: only the pages of colours seen take memory.
        self._gray = np.zeros(1 << 24, dtype=np.uint8)
        self._known = np.zeros(1 << 24, dtype=bool)

    def convert(self, pixels: np.ndarray) -> np.ndarray:
        """``(W, H)`` uint8 gray levels of ``(W, H)`` packed ``0xRRGGBB`` colours."""
        keys = pixels & 0xFFFFFF
        known = self._known[keys]
        if not known.all():
            new = np.unique(keys[~known])
            rgb = np.empty((1, len(new), 3), dtype=np.uint8)
            rgb[0, :, 0], rgb[0, :, 1], rgb[0, :, 2] = new >> 16, (new >> 8) & 0xFF, new & 0xFF
            self._gray[new] = np.dot(rgb, self.weights).clip(0, 255).astype(np.uint8)[0]
            self._known[new] = True
        return self._gray[keys]


@functools.cache
def gray_palette(weights: tuple[float, ...]) -> GrayPalette:
    """The process's :class:`GrayPalette` for ``weights`` (shared by every environment)."""
    return GrayPalette(weights)


class FastGrayscaleObservation(GrayscaleObservation):
    """A ``GrayscaleObservation`` that reads its :class:`FastLaneViewer`'s offscreen frame as
    packed pixels and converts them with a :class:`GrayPalette` (same gray levels); any other
    viewer or pixel format converts with the stock method."""

    def _render_to_grayscale(self) -> np.ndarray:
        viewer = self.viewer
        surface = viewer.sim_surface
        if (
            type(viewer) is not FastLaneViewer
            or not viewer.offscreen
            or surface.get_bitsize() != 32
            or tuple(surface.get_masks()[:3]) != RGB_MASKS
        ):
            return super()._render_to_grayscale()
        viewer.observer_vehicle = self.observer_vehicle
        viewer.display()
        return gray_palette(tuple(self.weights)).convert(pygame.surfarray.array2d(surface))


def use_fast_lane_viewer(observation_type: object) -> None:
    """Switch the observation's viewer, if it is a stock :class:`EnvViewer`, to
    :class:`FastLaneViewer` (same state, same surface), and a stock ``GrayscaleObservation`` to
    :class:`FastGrayscaleObservation`."""
    viewer = getattr(observation_type, "viewer", None)
    if type(viewer) is EnvViewer:
        viewer.__class__ = FastLaneViewer
    if type(observation_type) is GrayscaleObservation:
        observation_type.__class__ = FastGrayscaleObservation
