"""Numpy rasterization for the 2-D environments: shapes in world units, drawn at any frame size.

Gymnasium's classic-control renderers draw with fixed pixel sizes on a 600×400 pygame surface, so a
frame at a reward model's resolution needs a render-and-resize (slow) and a small screen shows a
black block. Here every shape is given in world units and rasterized straight into the requested
frame, touching only the pixels inside each shape's bounding box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

Color = tuple[int, int, int]


def check_render_size(width: int, height: int) -> None:
    """Raise ValueError unless width and height are positive integers."""
    for field, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"render {field} must be a positive integer, got {value!r}")


class Canvas:
    """An RGB frame (height, width, 3) showing a world rectangle with the same scale on both axes.

    The world box ``(left, right, bottom, top)`` is fully visible and centred; when the frame's aspect
    ratio differs from the box's, more world is shown along the longer axis (shapes are never stretched).
    """

    def __init__(self, width: int, height: int, world_box: tuple[float, float, float, float]) -> None:
        check_render_size(width, height)
        left, right, bottom, top = world_box
        self.width, self.height = int(width), int(height)
        self.pixels_per_unit = min(self.width / (right - left), self.height / (top - bottom))
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        self.left = centre_x - self.width / 2 / self.pixels_per_unit
        self.top = centre_y + self.height / 2 / self.pixels_per_unit
        self.right = centre_x + self.width / 2 / self.pixels_per_unit
        self.bottom = centre_y - self.height / 2 / self.pixels_per_unit
        # World coordinates of the pixel centres, one row / one column (broadcast when used).
        self.xs, self.ys = _pixel_centres(self.width, self.height, self.left, self.top, self.pixels_per_unit)
        self.frame = np.zeros((self.height, self.width, 3), dtype=np.uint8)

    def _pixel_box(self, x_min: float, x_max: float, y_min: float, y_max: float) -> tuple[slice, slice] | None:
        """Rows and columns whose pixel centres may lie inside the world box, or None when off-frame."""
        # math on Python floats: this runs several times per frame, where numpy's scalar overhead shows.
        col0 = max(math.floor((x_min - self.left) * self.pixels_per_unit), 0)
        col1 = min(math.ceil((x_max - self.left) * self.pixels_per_unit) + 1, self.width)
        row0 = max(math.floor((self.top - y_max) * self.pixels_per_unit), 0)
        row1 = min(math.ceil((self.top - y_min) * self.pixels_per_unit) + 1, self.height)
        if col0 >= col1 or row0 >= row1:
            return None
        return slice(row0, row1), slice(col0, col1)

    def fill(self, color: Color) -> None:
        """Paint the whole frame one color."""
        self.frame[:] = color

    def fill_vertical_gradient(self, top_color: Color, bottom_color: Color) -> None:
        """Paint the whole frame with a top-to-bottom color gradient (a sky)."""
        t = np.linspace(0.0, 1.0, self.height)[:, None]
        rows = (1 - t) * np.asarray(top_color, float) + t * np.asarray(bottom_color, float)
        self.frame[:] = rows.astype(np.uint8)[:, None, :]

    def fill_polygon(self, points: Sequence[Sequence[float]] | np.ndarray, color: Color) -> None:
        """Fill a convex polygon given by its vertices in world units (either winding order)."""
        pts = np.asarray(points, dtype=float)
        (x_min, y_min), (x_max, y_max) = pts.min(axis=0).tolist(), pts.max(axis=0).tolist()
        box = self._pixel_box(x_min, x_max, y_min, y_max)
        if box is None:
            return
        rows, cols = box
        xs, ys = self.xs[cols][None, None, :], self.ys[rows][None, :, None]
        x0, y0 = pts[:, 0, None, None], pts[:, 1, None, None]  # one edge per vertex, to the next one
        nxt = np.roll(pts, -1, axis=0)
        x1, y1 = nxt[:, 0, None, None], nxt[:, 1, None, None]
        sign = 1.0 if float(np.sum(x0 * y1 - x1 * y0)) >= 0 else -1.0
        # Inside a convex polygon = on the inner side of every edge (all edges at once: (edges, rows, cols)).
        inside = (sign * ((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)) >= 0).all(axis=0)
        # Slicing gives a view, so the boolean-mask assignment writes through to the frame.
        view = self.frame[rows, cols]
        view[inside] = color

    def fill_rotated_rect(
        self, centre: Sequence[float], length: float, thickness: float, angle: float, color: Color
    ) -> None:
        """Fill a rectangle centred at ``centre``, long side along ``angle`` (radians from the +x axis)."""
        # At low resolution a thin bar could fall between pixel centres and vanish: keep it >= 1.5 px.
        thickness = max(thickness, 1.5 / self.pixels_per_unit)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        c = np.asarray(centre, dtype=float)
        half_l, half_t = direction * length / 2, normal * thickness / 2
        self.fill_polygon([c - half_l - half_t, c + half_l - half_t, c + half_l + half_t, c - half_l + half_t], color)

    def fill_rect(self, x_min: float, x_max: float, y_min: float, y_max: float, color: Color) -> None:
        """Fill an axis-aligned rectangle given in world units."""
        box = self._pixel_box(x_min, x_max, y_min, y_max)
        if box is None:
            return
        rows, cols = box
        inside = ((self.xs[cols] >= x_min) & (self.xs[cols] <= x_max))[None, :] & (
            (self.ys[rows] >= y_min) & (self.ys[rows] <= y_max)
        )[:, None]
        view = self.frame[rows, cols]
        view[inside] = color

    def fill_circle(self, centre: Sequence[float], radius: float, color: Color) -> None:
        """Fill a disc given in world units."""
        cx, cy = float(centre[0]), float(centre[1])
        box = self._pixel_box(cx - radius, cx + radius, cy - radius, cy + radius)
        if box is None:
            return
        rows, cols = box
        inside = (self.xs[cols][None, :] - cx) ** 2 + (self.ys[rows][:, None] - cy) ** 2 <= radius**2
        view = self.frame[rows, cols]
        view[inside] = color

    def fill_below_curve(self, heights: np.ndarray, color: Color, stripe_color: Color | None = None) -> None:
        """Fill everything below a ground curve, given as one world height per pixel column.

        With ``stripe_color``, alternate bands parallel to the surface get that color (a texture that
        makes the slope readable at low resolution).
        """
        depth = heights[None, :] - self.ys[:, None]
        below = depth >= 0
        self.frame[below] = color
        if stripe_color is not None:
            band = 0.08  # world units; several bands are visible at 64 px
            striped = below & (np.floor(depth / band).astype(int) % 2 == 1)
            self.frame[striped] = stripe_color


@lru_cache(maxsize=64)
def _pixel_centres(width: int, height: int, left: float, top: float, pixels_per_unit: float):
    """World x of each pixel column's centre and world y of each row's (read-only, shared between frames)."""
    xs = left + (np.arange(width) + 0.5) / pixels_per_unit
    ys = top - (np.arange(height) + 0.5) / pixels_per_unit
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


class SimState:
    """Mixin for the classic-control envs whose simulator state is the vector ``self.state``.

    Subclasses name the state's fields (``STATE_FIELDS``) and keep a state inside its ranges in
    ``_constrain`` (as a step would), so any vector given to :meth:`set_sim_state` is one the env can reach.
    """

    STATE_FIELDS: tuple[str, ...] = ()

    def _init_rendering(self, render_mode: str | None, width: int, height: int) -> None:
        """Check and keep the render settings (frames come only as ``rgb_array``)."""
        check_render_size(width, height)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)

    def get_sim_state(self) -> np.ndarray:
        """The full simulator state, a copy: the fields ``STATE_FIELDS`` in order."""
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before reading the state")
        return np.array(self.state, dtype=np.float64)

    def set_sim_state(self, state: np.ndarray) -> None:
        """Put the simulator into ``state``, constrained to the env's ranges as a step would be."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (len(self.STATE_FIELDS),):
            raise ValueError(f"{type(self).__name__} state must have shape ({len(self.STATE_FIELDS)},) "
                             f"[{', '.join(self.STATE_FIELDS)}], got {state.shape}")
        self.state = self._constrain(state)

    def _constrain(self, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError

