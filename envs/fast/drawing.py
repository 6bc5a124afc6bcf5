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

import numpy as np
import pygame
from highway_env.envs.common.graphics import EnvViewer, ObservationGraphics
from highway_env.road.graphics import LaneGraphics, RoadGraphics, WorldSurface
from highway_env.road.lane import LineType
from highway_env.vehicle.graphics import VehicleGraphics

from envs.fast.geometry import LaneGeometry

NEAR_FRAME_PX = 60
"""Margin [px] around the frame within which vehicles are handed to ``VehicleGraphics``."""


def draw_lanes(geometry: LaneGeometry, surface: WorldSurface) -> None:
    """``RoadGraphics.display``: the grey ground and every lane's markings, all stripes of all
    lanes computed at once and drawn in the stock order, less the stripes whose two ends lie
    beyond the same edge of the frame by more than the line width (``pygame.draw.line`` draws
    nothing of those)."""
    surface.fill(surface.GREY)
    spacing = LaneGraphics.STRIPE_SPACING
    stripes_count = int(
        2 * (surface.get_height() + surface.get_width()) / (spacing * surface.scaling)
    )
    offsets = np.arange(stripes_count) * spacing
    lanes, starts, ends, lats = [], [], [], []
    for k, lane in enumerate(geometry.lanes):
        s_origin, _ = lane.lane.local_coordinates(surface.origin)
        s0 = (int(s_origin) // spacing - stripes_count // 2) * spacing
        for side in range(2):
            kind = lane.lane.line_types[side]
            if kind == LineType.STRIPED:
                start = s0 + offsets
                end = start + LaneGraphics.STRIPE_LENGTH
            elif kind == LineType.CONTINUOUS:
                start = s0 + offsets
                end = start + spacing
            elif kind == LineType.CONTINUOUS_LINE:
                start = np.array([s0 + 0 * spacing])
                end = np.array([s0 + stripes_count * spacing + LaneGraphics.STRIPE_LENGTH])
            else:
                continue
            lanes.append(np.full(len(start), k))
            starts.append(start)
            ends.append(end)
            lats.append(np.full(len(start), (side - 0.5) * lane.lane.width_at(s0)))
    if not lanes:
        return
    lane_of = np.concatenate(lanes)
    length = geometry.length[lane_of]
    start = np.clip(np.concatenate(starts), 0, length)
    end = np.clip(np.concatenate(ends), 0, length)
    drawn = np.flatnonzero(np.abs(start - end) > 0.5 * LaneGraphics.STRIPE_LENGTH)
    lane_of, lat = lane_of[drawn], np.concatenate(lats)[drawn]
    ox, oy = surface.origin[0], surface.origin[1]
    scaling = surface.scaling

    def pixels(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = geometry.position(lane_of, s, lat)
        return ((x - ox) * scaling).astype(int), ((y - oy) * scaling).astype(int)

    x0, y0 = pixels(start[drawn])
    x1, y1 = pixels(end[drawn])
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


class FastLaneViewer(EnvViewer):
    """An :class:`EnvViewer` whose offscreen frames draw the lanes with :func:`draw_lanes` and
    hand ``VehicleGraphics`` only the vehicles near the frame (in road order, as the stock)."""

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
            VehicleGraphics.display(vehicle, surface, offscreen=True)
        ObservationGraphics.display(self.env.observation_type, surface)


def use_fast_lane_viewer(observation_type: object) -> None:
    """Switch the observation's viewer, if it is a stock :class:`EnvViewer`, to
    :class:`FastLaneViewer` (same state, same surface)."""
    viewer = getattr(observation_type, "viewer", None)
    if type(viewer) is EnvViewer:
        viewer.__class__ = FastLaneViewer
