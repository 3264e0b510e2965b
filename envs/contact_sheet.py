"""Render every task's reference state and lay the frames out as a labelled contact sheet."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from envs.tasks import get_task

LABEL_HEIGHT = 18


def render_reference_frames(
    task_names: Sequence[str], width: int = 224, height: int = 224, **env_overrides: object
) -> dict[str, np.ndarray]:
    """Each task's reference state rendered through the task's own env: name -> (height, width, 3) uint8.

    ``env_overrides`` replace values in the tasks' own ``env_kwargs`` (e.g. ``fast_render`` for the
    MuJoCo tasks); a task without that key is left as it is. One env is made per distinct environment
    id and kwargs, and reused across tasks (a MuJoCo env holds an OpenGL context).
    """
    frames: dict[str, np.ndarray] = {}
    env_cache: dict[str, object] = {}
    try:
        for name in task_names:
            task = get_task(name)
            overrides = {k: v for k, v in env_overrides.items() if k in task.env_kwargs}
            kwargs = {**task.env_kwargs, **overrides, "render_mode": "rgb_array", "width": width, "height": height}
            key = f"{task.env_id}{sorted(kwargs.items())}"
            if key not in env_cache:
                env = task.make_env(**kwargs)
                env.reset(seed=0)
                env_cache[key] = env
            env = env_cache[key]
            env.unwrapped.set_sim_state(task.reference_state())
            frames[name] = env.render()
    finally:
        for env in env_cache.values():
            env.close()
    return frames


def contact_sheet(frames: dict[str, np.ndarray], columns: int = 4) -> Image.Image:
    """A grid of the frames, each with its label written underneath."""
    if not frames:
        raise ValueError("contact_sheet needs at least one frame")
    if columns <= 0:
        raise ValueError(f"columns must be positive, got {columns}")
    cell_h = max(f.shape[0] for f in frames.values()) + LABEL_HEIGHT
    cell_w = max(f.shape[1] for f in frames.values())
    rows = -(-len(frames) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (label, frame) in enumerate(frames.items()):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        sheet.paste(Image.fromarray(frame), (x, y))
        draw.text((x + 4, y + frame.shape[0] + 3), label, fill="black", font=font)
    return sheet
