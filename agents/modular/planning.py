"""Planning: which lane to drive in, how fast, and the path to follow.

Behaviour is a small state machine over lanes:

- **keep lane**: follow the current lane's centre; the speed comes from the Intelligent Driver
  Model (IDM, Treiber et al. 2000) behind the vehicle ahead;
- **change left / change right**: a lane change is started only when MOBIL (Kesting et al.
  2007) finds it both *safe* (the new follower need not brake harder than ``safe_braking``, and
  the gaps ahead and behind are at least ``min_front_gap`` / ``min_rear_gap``) and *worth it*
  (the ego car's IDM acceleration gains at least ``min_accel_gain``, with a small bias for the
  right-hand lanes); while changing, the car keeps checking that the target lane stays safe and
  goes back to its lane (**abort change**) if it is not and it has not crossed half-way yet.

Lanes are identified from step to step by lateral continuity (the target lane is the one whose
centre is nearest to where the target lane's centre was at the previous step), so the same
planner works on oracle lanes (known ids) and on vision lanes (ids relative to what is seen).

All positions are in the ego frame of :mod:`agents.modular.perception` (x forward, y right).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from agents.modular.perception import Detection, LaneEstimate, Percept, project_points
from envs.scene import PREDICTION_TIMES_S

EGO_LENGTH_M = 5.0
"""Length [m] of the ego car (highway-env's ``Vehicle.LENGTH``)."""
EGO_WIDTH_M = 2.0
"""Width [m] of the ego car."""


@dataclass(frozen=True)
class PlannerConfig:
    """Behaviour settings.

    The defaults were chosen on ``highway`` validation seeds (100 episodes, no crash) to drive at
    least as fast as highway-env's IDM/MOBIL driver: a shorter time headway than its 1.5 s, a
    safety check that also counts cars drifting into the target lane, and hysteresis on aborts.

    Args:
        cruise_speed: desired speed [m/s] on a free road (capped by the speed limit if known).
        max_accel: IDM maximum acceleration ``a`` [m/s²].
        comfort_decel: IDM comfortable deceleration ``b`` [m/s²] (positive).
        max_decel: the strongest braking the planner asks for [m/s²] (positive).
        time_headway: IDM desired time gap ``T`` [s].
        min_gap: IDM jam distance ``s0`` [m], bumper to bumper.
        delta: IDM acceleration exponent.
        lane_changes: allow lane changes at all (off in single-lane tasks such as racetrack).
        politeness: MOBIL politeness ``p`` (weight of the other drivers' gains).
        min_accel_gain: MOBIL threshold [m/s²] a lane change must gain.
        right_bias: extra gain [m/s²] for moving right (keep-right rule; negative for left).
        safe_braking: MOBIL safety: the deceleration [m/s²] the new follower may be forced to.
        abort_braking: a lane change under way is aborted when it would force this braking
            [m/s²] on the ego car or the new follower.
        min_front_gap, min_rear_gap: bumper gaps [m] the target lane must offer ahead/behind.
        change_cooldown: seconds to wait after a lane change before starting another.
        path_length: length [m] of the reference path ahead.
        path_spacing: spacing [m] of its points.
        occupancy_margin: a vehicle occupies a lane when it overlaps it by more than this [m].
        view_ahead: vehicles farther ahead [m] than this are ignored.
        cut_in_horizon: for lane-change safety, a car also occupies the lanes its lateral
            velocity takes it into within this many seconds [s] (cut-ins, merging cars).
        can_brake: False when the environment holds the speed (steer-only tasks): then the car
            dodges a slower car by changing to the lane with the longest time to collision as
            soon as its own falls under ``evade_time`` [s], and never aborts such a change.
        evade_time: see ``can_brake``.
        dodge_only: without brakes (``can_brake``), make no lane change but dodges: MOBIL
            weighs IDM accelerations the car cannot apply, and on the racetrack's curves its
            changes ran the car off the road (racetrack validation seeds 100270, 100330 and
            100337, with ``evade_time`` 5 s).
        safety_clearance: for lane-change safety, a car also occupies a lane when it is less
            than this [m] from its edge.
        leave_ending_lane_gain: incentive [m/s²] added to leaving a lane that ends (merges
            into a neighbour ahead); a lane that ends is never a lane-change target.
        lane_frame: read other cars' motion in each lane's own frame (for ``can_brake``'s
            dodging, where lanes curve): a car drifts into or out of a lane at its velocity
            across the lane's centre line, not along a straight line in the ego frame (which
            swings a car that follows a curve out of its lane: racetrack validation seed
            100202 dodged into the lane the car ahead really was in), and closes at its speed
            along the lane (a car farther round a curve moves sideways or backwards in the ego
            frame, and seed 100219 dodged out of a free lane; :meth:`_Lane.time_to_collision`).
        curve_lateral_accel: the desired speed is capped so that the lateral acceleration on
            the curves of the reference path ahead stays below this [m/s²], braking for them at
            ``curve_decel`` [m/s²] (inf: no cap; the default, for straight roads).
        curve_decel: see ``curve_lateral_accel``.
        yield_gap: time gap [s] kept to vehicles whose predicted path crosses or joins the
            reference path ahead (:attr:`Detection.predicted`): unless the ego car clears the
            conflict point this long before the other car reaches it, or reaches it this long
            after the other car has passed, it stops before the conflict point (gives way at a
            junction). 0 turns yielding off (the default: roads without junctions).
        yield_left_only: give way only to vehicles now left of the reference path (``yield_gap``):
            the priority rule of a roundabout in right-hand traffic, where the ring's cars come
            from the entering car's left and the entering cars from the ring car's right; without
            it the car also gave way on the ring to cars entering it, and stood there until the
            time ran out (roundabout validation seed 100045).
        exit_right: the route leaves the road on the right (a highway exit): MOBIL's choice is
            replaced by a mandatory change right whenever the gap there is acceptable
            (:meth:`Planner._gap_acceptable`, never to the left); while it is not, the car
            speeds up or slows down to line up with the acceptable gap there it reaches soonest
            (:meth:`Planner._gap_speed`).
        exit_speed_margin: the most [m/s] that speed differs from the lane's (``exit_right``).
        gap_gain: how fast the car closes on that gap [1/s] (``exit_right``).
        mandatory_gap: the bumper gap [m] a mandatory change (``exit_right``) needs ahead and
            behind at equal speeds, plus ``mandatory_headway`` [s] of the rear car's speed.
            Drivers who must change lanes accept much shorter gaps than MOBIL's discretionary
            safety criterion (Toledo et al. 2003, "Modeling integrated lane-changing behavior";
            Kesting et al. 2007 relax MOBIL's criterion likewise for mandatory changes).
        mandatory_headway: see ``mandatory_gap``.
        exit_urgency_distance: within this distance [m] of where the route leaves the road
            (:attr:`Percept.route_remaining_m`, where the perception knows it; 0: never), a
            mandatory change (``exit_right``) grows urgent, linearly from 0 there to 1 at that
            point: the speed the car may drive at to reach a gap ahead falls from its lane's
            leader's towards the target lane's speed (so it slows to line up with a gap behind
            rather than chase one ahead), and ``mandatory_headway`` towards ``urgent_headway``.
        urgent_headway: see ``exit_urgency_distance`` [s].
    """

    cruise_speed: float = 30.0
    max_accel: float = 3.0
    comfort_decel: float = 5.0
    max_decel: float = 5.0
    time_headway: float = 1.0
    min_gap: float = 6.0
    delta: float = 4.0
    lane_changes: bool = True
    politeness: float = 0.1
    min_accel_gain: float = 0.2
    right_bias: float = 0.05
    safe_braking: float = 2.0
    abort_braking: float = 4.0
    min_front_gap: float = 6.0
    min_rear_gap: float = 6.0
    change_cooldown: float = 1.0
    path_length: float = 50.0
    path_spacing: float = 2.5
    occupancy_margin: float = 0.3
    view_ahead: float = 80.0
    leave_ending_lane_gain: float = 2.0
    cut_in_horizon: float = 1.0
    can_brake: bool = True
    evade_time: float = 3.0
    dodge_only: bool = False
    safety_clearance: float = 0.3
    lane_frame: bool = False
    curve_lateral_accel: float = math.inf
    curve_decel: float = 2.0
    yield_gap: float = 0.0
    yield_left_only: bool = False
    exit_right: bool = False
    exit_speed_margin: float = 4.0
    gap_gain: float = 0.5
    mandatory_gap: float = 3.0
    mandatory_headway: float = 0.3
    exit_urgency_distance: float = 0.0
    urgent_headway: float = 0.3


@dataclass
class PlannerState:
    """Per-episode planner memory.

    Attributes:
        target_offset: lateral position [m] (ego frame) of the target lane's centre at the last
            step, or None before the first step.
        origin_offset: same for the lane a lane change started from (None when keeping lane).
        cooldown: seconds left before another lane change may start.
    """

    target_offset: float | None = None
    origin_offset: float | None = None
    cooldown: float = 0.0


@dataclass
class Plan:
    """The planner's output for one step.

    Attributes:
        decision: ``"keep lane"``, ``"change left"``, ``"change right"``, ``"abort change"`` or
            ``"yield"`` (giving way at a junction, ``yield_gap``).
        lane, target_lane: ids (:attr:`LaneEstimate.index`) of the current and target lanes.
        target_speed: desired speed [m/s] (the cruise speed capped by the speed limit).
        accel: IDM acceleration [m/s²] behind the relevant leaders.
        reference_path: ``(K, 2)`` target lane centre ahead, ego frame [m].
        leader_gap: bumper gap [m] to the vehicle ahead that limits the speed (inf if none).
        leader_speed: its speed [m/s] (nan if none).
        lateral_offset: ego offset [m] from the current lane's centre (positive = right).
        incentives: MOBIL gain [m/s²] of changing ``"left"`` / ``"right"`` when a change was
            considered this step (``-inf``: unsafe).
    """

    decision: str
    lane: int
    target_lane: int
    target_speed: float
    accel: float
    reference_path: np.ndarray
    leader_gap: float = math.inf
    leader_speed: float = math.nan
    lateral_offset: float = 0.0
    incentives: dict[str, float] = field(default_factory=dict)


def idm_accel(
    speed: float, desired: float, gap: float, leader_speed: float, cfg: PlannerConfig
) -> float:
    """IDM acceleration [m/s²] at ``speed`` behind a leader ``gap`` m ahead (inf: free road)."""
    free = cfg.max_accel * (1.0 - (max(speed, 0.0) / max(desired, 0.1)) ** cfg.delta)
    if not math.isfinite(gap):
        return free
    dv = speed - leader_speed
    s_star = cfg.min_gap + max(
        0.0,
        speed * cfg.time_headway + speed * dv / (2 * math.sqrt(cfg.max_accel * cfg.comfort_decel)),
    )
    return free - cfg.max_accel * (s_star / max(gap, 0.1)) ** 2


class _Occupant(NamedTuple):
    """A vehicle that occupies a lane (:class:`_Lane`).

    Attributes:
        gap: bumper gap [m] along the lane, + ahead / - behind (sign of ``station``).
        vehicle: the detection.
        level: how it occupies the lane: 0 overlaps it now, 1 will within the cut-in horizon,
            2 is within the safety clearance of its edge.
        later: whether it overlaps the lane at the end of the cut-in horizon.
        station: its centre's arc length [m] along the lane minus the ego car's.
        along: its speed [m/s] along the lane (``PlannerConfig.lane_frame``; else its ego-frame
            ``vx``).
    """

    gap: float
    vehicle: Detection
    level: int
    later: bool
    station: float
    along: float


@dataclass
class _Lane:
    """A lane seen from the ego car: its estimate, the ego's coordinates, who occupies it."""

    estimate: LaneEstimate
    s_ego: float
    d_ego: float
    occupants: list[_Occupant]
    ends: bool = False  # it merges into a neighbour within the centre lines' reach

    @property
    def centre_offset(self) -> float:
        """Lateral position [m] of the lane centre relative to the ego car (+ right)."""
        return -self.d_ego

    def leader(self, level: int = 1) -> tuple[float, Detection | None]:
        """(gap, vehicle) of the nearest occupant ahead of occupancy ``level`` or lower."""
        ahead = [(g, d) for g, d, k, *_ in self.occupants if d.x > 0 and k <= level]
        return min(ahead, key=lambda item: item[0]) if ahead else (math.inf, None)

    def follower(self, level: int = 1) -> tuple[float, Detection | None]:
        """(gap, vehicle) of the nearest occupant behind of occupancy ``level`` or lower.

        A car behind the ego car along its heading but not behind it along the lane (level
        with it, or ahead of it round a curve) gets a gap of at most 0: it is alongside (the
        gap's sign follows ``station``, so ``-g`` read a car exactly level, ``station`` 0, as
        half the two cars' lengths behind, and a started lane change's halved gaps let it in).
        """
        behind = [
            (-g if station < 0 else -abs(g), d)
            for g, d, k, _, station, _ in self.occupants
            if d.x <= 0 and k <= level
        ]
        return min(behind, key=lambda item: item[0]) if behind else (math.inf, None)

    def time_to_collision(self, speed: float, lane_frame: bool = False) -> float:
        """Seconds [s] until the ego car, at ``speed`` and unable to brake, reaches the nearest
        car that is in this lane now or will be at the end of the cut-in horizon (inf if none;
        the straight-line extrapolation behind "will be" swings a car on a curve out of its
        lane, and racetrack seed 100030 dodged into a car that was in the other lane then);
        0 if a car is or will be alongside: its bumper gap along the lane says it overlaps
        the ego car, or its centre is within half the two lengths of the ego's along the ego's
        heading (on a curve the two disagree: racetrack validation seeds 100001 and 100007
        changed lanes into a car alongside whose projection onto the curved lane put it
        ahead).

        ``lane_frame`` (``PlannerConfig.lane_frame``): a car is ahead when its station along
        the lane is, it closes at its speed along the lane, and the ego-frame test of "alongside"
        only counts cars less than two lane widths to the side (a car farther round a hairpin
        is level with the ego car along its heading, but far ahead along the lane)."""
        ttc = math.inf
        width = self.estimate.width
        for g, d, level, later, station, along in self.occupants:
            if not later and level != 0:
                continue
            if lane_frame:
                overlaps = abs(station) < (d.length + EGO_LENGTH_M) / 2
                level_with = abs(d.x) < (d.length + EGO_LENGTH_M) / 2 and abs(d.y) < 2 * width
                if overlaps or level_with:
                    return 0.0
                ahead = g > 0
            else:
                if ((g < 0) if d.x > 0 else (g > 0)) or abs(d.x) < (d.length + EGO_LENGTH_M) / 2:
                    return 0.0
                ahead = d.x > 0
            if ahead and speed > along:
                ttc = min(ttc, g / (speed - along))
        return ttc


class Planner:
    """MOBIL lane choice + IDM speed + lane-centre reference path (see module docstring).

    Args:
        config: behaviour settings.
        dt: seconds between two decisions.
    """

    def __init__(self, config: PlannerConfig, dt: float) -> None:
        self.config = config
        self.dt = dt

    # -- scene analysis ---------------------------------------------------------------------
    def _lanes(self, percept: Percept) -> list[_Lane]:
        out = []
        dets = [d for d in percept.detections if d.x <= self.config.view_ahead]
        h = self.config.cut_in_horizon
        points = np.array(
            [[0.0, 0.0]]
            + [[d.x, d.y] for d in dets]
            + [[d.x + h * d.vx, d.y + h * d.vy] for d in dets]
        )
        n = len(dets)
        velocities = np.array([[d.vx, d.vy] for d in dets]).reshape(n, 2)
        for lane in percept.lanes:
            s_all, d_all = project_points(lane.centerline, points)
            s_ego, d_ego = float(s_all[0]), float(d_all[0])
            s_now, d_now_all, d_later_all = s_all[1 : n + 1], d_all[1 : n + 1], d_all[n + 1 :]
            along_all = velocities[:, 0]
            if self.config.lane_frame:
                tangent = _tangents(lane.centerline, s_now)  # (n, 2)
                along_all = np.sum(velocities * tangent, axis=1)
                lateral = tangent[:, 0] * velocities[:, 1] - tangent[:, 1] * velocities[:, 0]
                d_later_all = d_now_all + h * lateral
            occupants = []
            for det, s, d_now, d_later, along in zip(
                dets, s_now, d_now_all, d_later_all, along_all, strict=True
            ):
                # a car occupies the lane if it overlaps it now or after `h` s of drifting
                half = lane.width / 2 + det.width / 2
                now = half - abs(d_now) > self.config.occupancy_margin
                near = half - abs(d_now) > -self.config.safety_clearance
                later = half - abs(d_later) > self.config.occupancy_margin
                if now or near or later:
                    station = float(s - s_ego)
                    gap = station - math.copysign((det.length + EGO_LENGTH_M) / 2, station)
                    level = 0 if now else 1 if later else 2
                    occupants.append(
                        _Occupant(float(gap), det, level, bool(later), station, float(along))
                    )
            out.append(_Lane(lane, s_ego, d_ego, occupants))
        if not self.config.exit_right:
            # the exit's through lanes end nowhere, but the scene's centre lines follow the
            # route into the exit ramp, where they converge with the exit lane's: marked as
            # ending, the lane beside the exit lane was never entered (exit validation seed
            # 100001 drove past the exit in the second lane from the right)
            _mark_ending(out)
        return out

    def _accel_in(
        self, lane: _Lane, speed: float, desired: float, level: int = 1
    ) -> tuple[float, float, float]:
        """(IDM acceleration, leader gap, leader speed) of the ego car in ``lane``."""
        gap, leader = lane.leader(level)
        if leader is None:
            return idm_accel(speed, desired, math.inf, 0.0, self.config), math.inf, math.nan
        return idm_accel(speed, desired, max(gap, 0.0), leader.vx, self.config), gap, leader.vx

    def _cornered(self, lane: _Lane, speed: float) -> bool:
        """Whether a car that cannot brake must leave ``lane`` (its time to collision is short)."""
        return lane.time_to_collision(speed, self.config.lane_frame) < self.config.evade_time

    def _safe(
        self, lane: _Lane, speed: float, desired: float, started: bool = False
    ) -> tuple[bool, float]:
        """MOBIL safety of moving into ``lane``, and the incentive of doing so (without bias).

        ``started``: the lane change is under way; it is then judged on the cars in the lane
        only, with half the gaps and ``abort_braking`` instead of ``safe_braking`` (hysteresis,
        so that a change is not started and aborted over and over).
        """
        cfg = self.config
        level, scale = (0, 0.5) if started else (2, 1.0)
        braking = cfg.abort_braking if started else cfg.safe_braking
        front_gap, leader = lane.leader(level)
        rear_gap, follower = lane.follower(level)
        if (
            lane.ends
            or front_gap < scale * cfg.min_front_gap
            or rear_gap < scale * cfg.min_rear_gap
        ):
            return False, -math.inf
        new_accel, _, _ = self._accel_in(lane, speed, desired, level)
        if new_accel < -braking:
            return False, -math.inf
        follower_gain = 0.0
        if follower is not None:
            f_speed = math.hypot(follower.vx, follower.vy)
            f_desired = max(f_speed, cfg.cruise_speed)
            after = idm_accel(f_speed, f_desired, rear_gap, speed, cfg)
            if after < -braking:
                return False, -math.inf
            lead_speed = leader.vx if leader is not None else 0.0
            gap_before = rear_gap + EGO_LENGTH_M + front_gap if leader is not None else math.inf
            before = idm_accel(f_speed, f_desired, gap_before, lead_speed, cfg)
            follower_gain = after - before
        return True, new_accel + cfg.politeness * follower_gain

    # -- planning -----------------------------------------------------------------------------
    def plan(self, percept: Percept, state: PlannerState) -> Plan:
        """One planning step; updates ``state`` in place."""
        cfg = self.config
        speed = percept.ego_speed
        desired = cfg.cruise_speed
        if math.isfinite(percept.speed_limit):
            desired = min(desired, percept.speed_limit)
        lanes = self._lanes(percept)
        if not lanes:
            return Plan(
                "keep lane",
                -1,
                -1,
                desired,
                idm_accel(speed, desired, math.inf, 0, cfg),
                self._straight_path(),
            )
        current = min(range(len(lanes)), key=lambda i: abs(lanes[i].d_ego))
        target = self._nearest(lanes, state.target_offset, current)
        state.cooldown = max(0.0, state.cooldown - self.dt)
        origin = (
            self._nearest(lanes, state.origin_offset, current)
            if state.origin_offset is not None
            else None
        )

        urgency = self._urgency(percept)
        decision = "keep lane"
        incentives: dict[str, float] = {}
        blocked: _Lane | None = None  # the lane to the right that exit_right waits to enter
        if target != current or origin is not None:
            # a lane change is under way: keep checking that the target lane stays safe
            if cfg.exit_right:
                safe = self._gap_acceptable(lanes[target], speed, urgency, started=True)
            else:
                safe, _ = self._safe(lanes[target], speed, desired, started=True)
            crossed = abs(lanes[target].d_ego) < lanes[target].estimate.width / 2
            if target == current and abs(lanes[target].d_ego) < 0.5:
                state.origin_offset, origin = None, None  # done
                state.cooldown = cfg.change_cooldown
            elif (
                not safe
                and cfg.can_brake
                and not crossed
                and origin is not None
                and origin != target
            ):
                target, origin = origin, None
                state.origin_offset = None
                state.cooldown = cfg.change_cooldown
                decision = "abort change"
            else:
                decision = "change right" if lanes[target].centre_offset > 0 else "change left"
        elif cfg.lane_changes and not cfg.can_brake and self._cornered(lanes[current], speed):
            # no brakes: dodge into the neighbour lane that leaves the most time
            best = max(
                (j for j in (current - 1, current, current + 1) if 0 <= j < len(lanes)),
                key=lambda j: (lanes[j].time_to_collision(speed, cfg.lane_frame), j == current),
            )
            if best != current:
                decision = "change right" if best > current else "change left"
                state.origin_offset = lanes[current].centre_offset
                origin, target = current, best
        elif cfg.exit_right:
            # the route leaves on the right: take the lane to the right as soon as its gap is
            # acceptable, and never change left
            right = lanes[current + 1] if current + 1 < len(lanes) else None
            if right is not None and not right.ends:
                if self._gap_acceptable(right, speed, urgency):
                    decision = "change right"
                    state.origin_offset = lanes[current].centre_offset
                    origin, target = current, current + 1
                else:
                    blocked = right
        elif (
            cfg.lane_changes
            and not (cfg.dodge_only and not cfg.can_brake)
            and state.cooldown <= 0.0
        ):
            here, _, _ = self._accel_in(lanes[current], speed, desired)
            best, best_gain = current, 0.0
            for side, j in (("left", current - 1), ("right", current + 1)):
                if not 0 <= j < len(lanes):
                    continue
                safe, accel = self._safe(lanes[j], speed, desired)
                if not safe:
                    incentives[side] = -math.inf
                    continue
                gain = accel - here + (cfg.right_bias if side == "right" else -cfg.right_bias)
                if lanes[current].ends:
                    gain += cfg.leave_ending_lane_gain
                incentives[side] = gain
                if gain > cfg.min_accel_gain and gain > best_gain:
                    best, best_gain = j, gain
            if best != current:
                decision = "change right" if best > current else "change left"
                state.origin_offset = lanes[current].centre_offset
                origin = current
                target = best

        state.target_offset = lanes[target].centre_offset
        if origin is not None:
            state.origin_offset = lanes[origin].centre_offset
        # speed: follow the leader of the current lane, and of the target lane while changing
        accel, gap, lead_speed = self._accel_in(lanes[current], speed, desired)
        if target != current:
            accel_t, gap_t, lead_t = self._accel_in(lanes[target], speed, desired)
            if accel_t < accel:
                accel, gap, lead_speed = accel_t, gap_t, lead_t
        if blocked is not None:
            # line up with the soonest reached gap in the lane to the right that the car fits
            # in, at most as fast as the current lane's leader (if near)
            top = lead_speed if gap < cfg.view_ahead / 2 else desired
            seek = min(self._gap_speed(blocked, top, urgency), desired)
            accel_seek, _, _ = self._accel_in(lanes[current], speed, seek)
            accel = min(accel, accel_seek)
        path = self._path(lanes[target])
        if math.isfinite(cfg.curve_lateral_accel):
            curve_speed = self._curve_speed(lanes[target])
            if curve_speed < desired:
                accel = min(accel, idm_accel(speed, curve_speed, math.inf, 0.0, cfg))
        if cfg.yield_gap > 0:
            stop = self._yield_distance(path, percept.detections, speed, desired)
            if stop < gap:
                accel = min(accel, idm_accel(speed, desired, max(stop, 0.0), 0.0, cfg))
                gap, lead_speed = stop, 0.0
                decision = "yield" if decision == "keep lane" else decision
        accel = max(accel, -cfg.max_decel)
        # highway-env's cars reverse under a negative acceleration once stopped, and IDM read
        # a reversing car's speed as 0 and kept braking (roundabout seed 100023 backed 17 m up
        # its entry): brake at most to a stop within one decision, and undo any reversing
        accel = max(accel, -speed / self.dt)
        return Plan(
            decision=decision,
            lane=lanes[current].estimate.index,
            target_lane=lanes[target].estimate.index,
            target_speed=desired,
            accel=accel,
            reference_path=path,
            leader_gap=gap,
            leader_speed=lead_speed,
            lateral_offset=lanes[current].d_ego,
            incentives=incentives,
        )

    def _urgency(self, percept: Percept) -> float:
        """How urgent a mandatory change is, 0 to 1 (see ``exit_urgency_distance``)."""
        cfg = self.config
        if cfg.exit_urgency_distance <= 0 or percept.route_remaining_m is None:
            return 0.0
        return float(np.clip(1.0 - percept.route_remaining_m / cfg.exit_urgency_distance, 0, 1))

    def _gap_acceptable(
        self, lane: _Lane, speed: float, urgency: float = 0.0, started: bool = False
    ) -> bool:
        """Whether a mandatory change into ``lane`` at ``speed`` [m/s] is safe (``exit_right``)
        at ``urgency`` (0 to 1, :meth:`_urgency`).

        The lead gap must hold :meth:`_mandatory_gap` at the ego's speed plus the distance the
        ego car needs to slow to its new leader's speed at ``safe_braking``; the lag gap the
        same at the new follower's speed, plus the distance it needs to slow to the ego's
        (Toledo et al. 2003's critical gaps grow with the closing speed likewise). A change
        under way is judged on the cars in the lane only, with half the gaps (hysteresis, as
        in :meth:`_safe`)."""
        cfg = self.config
        level, scale = (0, 0.5) if started else (1, 1.0)
        if lane.ends:
            return False
        front_gap, leader = lane.leader(level)
        if leader is not None:
            closing = max(speed - leader.vx, 0.0)
            need = scale * self._mandatory_gap(speed, urgency) + closing**2 / (2 * cfg.safe_braking)
            if front_gap < need:
                return False
        rear_gap, follower = lane.follower(level)
        if follower is not None:
            closing = max(follower.vx - speed, 0.0)
            need = scale * self._mandatory_gap(follower.vx, urgency) + closing**2 / (
                2 * cfg.safe_braking
            )
            if rear_gap < need:
                return False
        return True

    def _mandatory_gap(self, speed: float, urgency: float = 0.0) -> float:
        """Bumper gap [m] a mandatory change needs at equal speeds behind a car at ``speed``
        [m/s], at ``urgency`` (0 to 1: the headway from ``mandatory_headway`` to
        ``urgent_headway``)."""
        cfg = self.config
        headway = cfg.mandatory_headway + urgency * (cfg.urgent_headway - cfg.mandatory_headway)
        return cfg.mandatory_gap + headway * max(speed, 0.0)

    def _gap_speed(self, lane: _Lane, top_speed: float, urgency: float = 0.0) -> float:
        """The speed [m/s] that brings the ego car alongside the gap of ``lane`` long enough to
        change into that it reaches soonest (``exit_right``), driving at most at ``top_speed``
        [m/s] in its own lane, or with ``urgency`` (0 to 1, :meth:`_urgency`) at most that much
        of the way from the lane's speed to ``top_speed`` less.

        Gaps lie between consecutive cars in the lane (and before the first and after the
        last); one fits when it holds the ego car and, ahead and behind it, the mandatory gap
        at the lane's speed (:meth:`_mandatory_gap`) with a ``min_gap`` margin, so that the
        change is accepted once the ego car lines up with it. A gap ``c`` m ahead moving at
        ``v`` is reached in about ``c / (top_speed - v)`` s, one behind in ``|c| /
        exit_speed_margin`` s. The speed is the lane's (that of the car bounding the gap) plus
        ``gap_gain`` times the gap centre's distance ahead [m], at most ``exit_speed_margin``
        away from it either way."""
        cfg = self.config
        cars = sorted(
            (d.x, d.length, d.vx) for _, d, k, *_ in lane.occupants if k <= 1
        )  # (centre ahead of the ego [m], length [m], speed [m/s]), rear-most first
        if not cars:
            return math.inf
        lane_speed = float(np.median([v for _, _, v in cars]))
        top_speed -= urgency * max(top_speed - lane_speed, 0.0)
        need = EGO_LENGTH_M + 2 * self._mandatory_gap(lane_speed, urgency) + cfg.min_gap
        gaps = [(cars[0][0] - cars[0][1] / 2 - need / 2, cars[0][2])]
        for (a, la, _), (b, lb, vb) in itertools.pairwise(cars):
            if (b - lb / 2) - (a + la / 2) >= need:
                gaps.append(((a + la / 2 + b - lb / 2) / 2, vb))
        gaps.append((cars[-1][0] + cars[-1][1] / 2 + need / 2, cars[-1][2]))
        margin = cfg.exit_speed_margin

        def time_to_reach(gap: tuple[float, float]) -> float:
            centre, speed = gap
            if centre <= 0.0:
                return -centre / margin
            return centre / max(top_speed - speed, 0.1)

        centre, speed = min(gaps, key=time_to_reach)
        return max(speed + float(np.clip(cfg.gap_gain * centre, -margin, margin)), 0.0)

    def _curve_speed(self, lane: _Lane) -> float:
        """The highest speed [m/s] from which the ego car can slow at ``curve_decel`` to keep
        the lateral acceleration on every curve of ``lane``'s centre line ahead (within
        ``path_length``) below ``curve_lateral_accel``: ``min sqrt(a_lat / kappa + 2 b s)``.

        The curvature ``kappa`` [1/m] at a centre-line point is its turning angle over the mean
        length of its two segments (the points are a few metres apart)."""
        cfg = self.config
        line = lane.estimate.centerline
        seg = np.diff(line, axis=0)
        length = np.hypot(seg[:, 0], seg[:, 1])
        if len(seg) < 2:
            return math.inf
        angle = np.arctan2(seg[:, 1], seg[:, 0])
        turn = np.abs((np.diff(angle) + math.pi) % (2 * math.pi) - math.pi)
        kappa = turn / np.maximum((length[:-1] + length[1:]) / 2, 1e-6)
        arc = np.concatenate([[0.0], np.cumsum(length)])[1:-1] - lane.s_ego  # at inner points
        ahead = (arc > -EGO_LENGTH_M) & (arc < cfg.path_length) & (kappa > 1e-6)
        if not np.any(ahead):
            return math.inf
        speeds = np.sqrt(
            cfg.curve_lateral_accel / kappa[ahead]
            + 2.0 * cfg.curve_decel * np.maximum(arc[ahead], 0.0)
        )
        return float(np.min(speeds))

    def _yield_distance(
        self, path: np.ndarray, detections: list[Detection], speed: float, desired: float
    ) -> float:
        """Bumper distance [m] to the stop point before the nearest conflict the ego car must
        give way at (inf if none), see ``yield_gap``.

        A conflict is a vehicle not on ``path`` (``(K, 2)`` ego frame, from the ego car's
        station) now whose predicted positions come within half the two cars' widths plus
        ``safety_clearance`` of it, at arc length ``s_c``, from time ``t_in`` to ``t_out`` (its
        length past ``s_c`` later when it stays on the path, merging into it). The ego car's
        times to reach ``s_c`` and to clear it come from accelerating at ``max_accel`` up to
        ``desired`` from ``speed``. A conflict closer than the ego's length, or nearer than the
        ego car can stop from ``speed`` at ``max_decel``, is committed to (not yielded at).
        """
        cfg = self.config
        seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
        arc_end = float(np.sum(seg))
        stopping = speed**2 / (2 * cfg.max_decel)
        nearest = math.inf
        for det in detections:
            if det.predicted is None:
                continue
            s, d = project_points(path, det.predicted)
            half = (EGO_WIDTH_M + det.width) / 2 + cfg.safety_clearance
            on = (np.abs(d) < half) & (s > 0.0) & (s < arc_end)
            if on[0] or not np.any(on):
                continue  # on the path now (a leader or follower, left to IDM), or never
            if cfg.yield_left_only and d[0] > 0.0:
                continue  # it comes from the right: it gives way
            k_in = int(np.argmax(on))
            s_c = float(s[k_in])
            clearance = EGO_LENGTH_M / 2 + det.width / 2 + cfg.safety_clearance
            if s_c < EGO_LENGTH_M or s_c - clearance < stopping or s_c - clearance > nearest:
                continue
            times = PREDICTION_TIMES_S
            t_in = float(times[k_in])
            off = np.flatnonzero(~on[k_in:])
            if len(off):
                t_out = float(times[k_in + int(off[0])])
            else:  # it joins the path: it has passed once its length is past the point
                other_speed = max(math.hypot(det.vx, det.vy), 0.1)
                t_out = t_in + (det.length + EGO_LENGTH_M) / other_speed
            ego_in = _travel_time(s_c - clearance, speed, desired, cfg.max_accel)
            ego_out = _travel_time(s_c + clearance + det.length / 2, speed, desired, cfg.max_accel)
            if ego_out + cfg.yield_gap < t_in or t_out + cfg.yield_gap < ego_in:
                continue
            nearest = s_c - clearance
        return nearest - EGO_LENGTH_M / 2 if math.isfinite(nearest) else math.inf

    @staticmethod
    def _nearest(lanes: list[_Lane], offset: float | None, default: int) -> int:
        if offset is None:
            return default
        return min(range(len(lanes)), key=lambda i: abs(lanes[i].centre_offset - offset))

    def _path(self, lane: _Lane) -> np.ndarray:
        """``(K, 2)`` points of ``lane``'s centre from the ego's station onwards."""
        line = lane.estimate.centerline
        seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        s = lane.s_ego + np.arange(0.0, self.config.path_length + 1e-9, self.config.path_spacing)
        s = np.clip(s, arc[0], arc[-1])
        return np.stack([np.interp(s, arc, line[:, 0]), np.interp(s, arc, line[:, 1])], axis=1)

    def _straight_path(self) -> np.ndarray:
        x = np.arange(0.0, self.config.path_length + 1e-9, self.config.path_spacing)
        return np.stack([x, np.zeros_like(x)], axis=1)


def _tangents(polyline: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``(N, 2)`` unit tangents of ``polyline`` ``(K, 2)``, ``K >= 2``, at arc lengths ``s``
    ``(N,)`` [m] (those of the segments holding them; the end segments beyond the ends)."""
    seg = np.diff(polyline, axis=0)
    length = np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)
    starts = np.concatenate([[0.0], np.cumsum(length)])[:-1]
    k = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(seg) - 1)
    return seg[k] / length[k, None]


def _travel_time(distance: float, speed: float, top_speed: float, accel: float) -> float:
    """Seconds [s] to drive ``distance`` [m] from ``speed`` [m/s], accelerating at ``accel``
    [m/s²] up to ``top_speed`` [m/s] and holding it there."""
    if distance <= 0.0:
        return 0.0
    speed = max(speed, 0.0)
    top = max(top_speed, speed, 0.1)
    ramp_time = (top - speed) / accel
    ramp = speed * ramp_time + 0.5 * accel * ramp_time**2
    if distance >= ramp:
        return ramp_time + (distance - ramp) / top
    return (-speed + math.sqrt(speed**2 + 2 * accel * distance)) / accel


def _mark_ending(lanes: list[_Lane]) -> None:
    """Flag lanes whose centre line ahead runs into a neighbour's (an on-ramp or a lane drop).

    Centre lines of one road are sampled at the same stations, so point ``k`` of two lanes are
    side by side; the lane that moves sideways more is the one that ends.
    """
    for a, b in itertools.pairwise(lanes):
        ca, cb = a.estimate.centerline, b.estimate.centerline
        if ca.shape != cb.shape:
            continue
        ahead = ca[:, 0] > 0
        gap = np.linalg.norm(ca - cb, axis=1)
        width = min(a.estimate.width, b.estimate.width)
        if not np.any(ahead & (gap < width / 2)):
            continue
        shift_a = np.ptp(ca[ahead, 1]) if ahead.any() else 0.0
        shift_b = np.ptp(cb[ahead, 1]) if ahead.any() else 0.0
        (a if shift_a > shift_b else b).ends = True
