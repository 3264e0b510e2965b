"""Rendering speed of the pixel environments, each against its baseline in the same process.

- Humanoid at 224x224: ``fast_render=True`` (shadows, reflections, multisampling off) against the
  default MuJoCo settings, same env, same pose, same OpenGL backend (``MUJOCO_GL``, default egl).
- CartPole at 224x224: native drawing at 224x224 against drawing the same scene at gymnasium's
  600x400 screen size and resizing to 224x224 (PIL bilinear). (Gymnasium's own pygame renderer is
  not installed here; the baseline uses this package's renderer at 600x400.)

Rounds of the two modes alternate so that load from other processes hits both alike; each figure is
the ratio of the median frames/s over rounds.

    MUJOCO_GL=egl python benchmarks/render.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
from PIL import Image

import envs
from envs.cartpole import cartpole_background, render_cartpole
from envs.humanoid import PixelHumanoidEnv

SIZE = 224
ROUNDS = 5


def frames_per_second(render: Callable[[int], object], frames: int) -> float:
    """Frames/s of ``render(i)`` over ``frames`` calls (after one warm-up call)."""
    render(0)
    start = time.perf_counter()
    for i in range(frames):
        render(i)
    return frames / (time.perf_counter() - start)


def alternate(modes: dict[str, Callable[[int], object]], frames: int) -> dict[str, float]:
    """Median frames/s of each mode over ``ROUNDS`` alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(ROUNDS):
        for name, render in modes.items():
            samples[name].append(frames_per_second(render, frames))
    return {name: float(np.median(values)) for name, values in samples.items()}


def humanoid_modes() -> tuple[dict[str, Callable[[int], object]], list[PixelHumanoidEnv]]:
    poses = [envs.get_task(name).reference_state() for name in ("humanoid-standing", "humanoid-kneeling")]
    modes, opened = {}, []
    for name, fast in (("default", False), ("fast", True)):
        env = PixelHumanoidEnv(render_mode="rgb_array", width=SIZE, height=SIZE, fast_render=fast)
        env.reset(seed=0)
        opened.append(env)

        def render(i: int, env: PixelHumanoidEnv = env) -> np.ndarray:
            env.set_sim_state(poses[i % 2])
            return env.render()

        modes[name] = render
    return modes, opened


def cartpole_modes() -> dict[str, Callable[[int], object]]:
    rng = np.random.default_rng(0)
    states = [rng.uniform([-2.4, 0, -np.pi, 0], [2.4, 0, np.pi, 0]) for _ in range(64)]
    native_bg, big_bg = cartpole_background(SIZE, SIZE), cartpole_background(600, 400)

    def native(i: int) -> np.ndarray:
        return render_cartpole(states[i % 64], SIZE, SIZE, native_bg)

    def render_and_resize(i: int) -> np.ndarray:
        big = render_cartpole(states[i % 64], 600, 400, big_bg)
        return np.asarray(Image.fromarray(big).resize((SIZE, SIZE), Image.BILINEAR))

    return {"render_600x400_and_resize": render_and_resize, "native": native}


def main() -> None:
    print(
        f"MUJOCO_GL={os.environ['MUJOCO_GL']} LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'unset (Mesa default)')}"
    )
    print(f"cores visible: {os.cpu_count()}; numpy drawing is single-threaded")
    modes, opened = humanoid_modes()
    humanoid = alternate(modes, frames=20)
    for env in opened:
        env.close()
    for name, fps in humanoid.items():
        print(f"humanoid {SIZE}x{SIZE} {name}: {fps:.1f} frames/s")
    cartpole = alternate(cartpole_modes(), frames=300)
    for name, fps in cartpole.items():
        print(f"cartpole {SIZE}x{SIZE} {name}: {fps:.0f} frames/s ({1000 / fps:.3f} ms/frame)")
    print(f"humanoid_fast_render_speedup: {humanoid['fast'] / humanoid['default']:.2f} (target >= 8)")
    print(
        f"cartpole_native_render_speedup: {cartpole['native'] / cartpole['render_600x400_and_resize']:.2f} (target >= 4)"
    )


if __name__ == "__main__":
    main()
