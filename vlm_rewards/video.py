"""Policy videos: a saved policy's episodes with the learned and the true reward drawn beside each frame.

    from vlm_rewards.video import PolicyVideoConfig, record_policy_video
    video = record_policy_video(PolicyVideoConfig(run_dir="runs/robotics/cartpole/seed_0"))
    print(video.mp4, video.gif, video.csv)

A seed run directory of the robotics experiment (``<output_dir>/seed_<s>``, :mod:`vlm_rewards.robotics`) holds
the training config (``run_config.json``) and the policy (``final/model.zip``; ``checkpoint/model.zip`` while
it trains). The policy acts in a fresh environment built as training builds it (the same task and
``env_kwargs``, frames rendered at ``reward.render_size``), never in a training env. Every step becomes one
video frame: the state the step reached, rendered at ``size``, above a strip that shows

- the model (CLIP) reward of the step, the reward the agent was trained on: the frame at the reward's render
  size scored by the reward model built from the run's own config, as the training wrapper scores it (a run
  trained on the ground truth has no model reward, and the strip says so);
- the ground-truth reward of the state the step reached, ``task.reward(info["sim_state"])``;
- both rewards as curves up to the current step, each scaled to its own range over the whole video (a CLIP
  reward moves in a narrow band; the values themselves are printed and are in the CSV);
- the episode, the step and the success flag ``info["is_success"]``.

Files, each written atomically: ``<name>.mp4`` (every step, H.264 through imageio's ffmpeg plugin),
``<name>.gif`` (every ``gif_stride``-th step at ``gif_size``: small enough for a README) and ``<name>.csv``
(``episode, step, model_reward, ground_truth_reward, success`` for every step). :func:`log_video_to_tensorboard`
puts the GIF into TensorBoard; :func:`record_final_video` is what training runs after a seed's final
evaluation; :func:`record_flagged_window` is the hook for the proxy-versus-true reward monitor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import random
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from stable_baselines3.common.base_class import BaseAlgorithm

from rlhf.artifacts import RunDir, atomic_path, write_csv_atomic, write_json_atomic
from rlhf.config import ConfigError, config_from_dict
from rlhf.reward import RewardModel
from rlhf.rl import ALGORITHMS
from vlm_rewards.robotics import TrainPolicyConfig, build_reward_model, get_task, ground_truth_env_fn

logger = logging.getLogger(__name__)

CHECKPOINTS = ("final", "checkpoint")
#: Episodes of a final-evaluation video are reset with ``seed + FINAL_VIDEO_SEED_OFFSET`` (the learning curve
#: uses +10_000 and the final evaluation +20_000, see :class:`rlhf.rl.Trainer`).
FINAL_VIDEO_SEED_OFFSET = 30_000
MACRO_BLOCK = 16  # H.264 codes 16x16 blocks; imageio rescales frames whose sides are not multiples of it
MIN_WIDTH = 128  # the strip's text and range labels need this many pixels

MODEL_COLOR = (31, 119, 180)
TRUE_COLOR = (214, 96, 0)
SUCCESS_COLOR = (44, 160, 44)
TEXT_COLOR = (40, 40, 40)
MUTED_COLOR = (130, 130, 130)
GRID_COLOR = (215, 215, 215)
BACKGROUND = (255, 255, 255)


class PolicyVideoError(ConfigError):
    """A policy, run directory or output path that cannot give a video; the message names it and what is wrong."""


@dataclasses.dataclass
class PolicyVideoConfig:
    """Which policy to film, for how many episodes, and where the files go."""

    run_dir: str = ""  # the seed run directory the policy was trained in: <output_dir>/seed_<s>
    checkpoint: str = "final"  # "final" (final/model.zip) or "checkpoint" (checkpoint/model.zip, while training)
    policy_file: str | None = None  # an SB3 policy file to film instead of the run's own, on run_dir's task and reward
    output_dir: str | None = None  # None: <run_dir>/rollouts
    name: str | None = None  # file names <name>.mp4/.gif/.csv; None: <checkpoint or policy file stem>_seed<seed>
    episodes: int = 1
    seed: int = 0  # reset seed of the first episode (the next ones continue its generator); seeds sampled actions
    deterministic: bool | None = None  # act greedily; None: as the run evaluated (rl.deterministic)
    size: int = 256  # frame width and height in the MP4, a multiple of 16; the strip goes below
    gif_size: int = 160  # frame width and height in the GIF
    gif_stride: int = 2  # the GIF shows every gif_stride-th step

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ConfigError("give the seed run directory the policy was trained in (<output_dir>/seed_<s>)",
                              key="run_dir")
        if self.checkpoint not in CHECKPOINTS:
            raise ConfigError(f"unknown {self.checkpoint!r}; choose one of {CHECKPOINTS}", key="checkpoint")
        for key in ("episodes", "gif_stride"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        for key in ("size", "gif_size"):
            if getattr(self, key) < MIN_WIDTH:
                raise ConfigError(f"must be >= {MIN_WIDTH} (the strip's text needs the width), got "
                                  f"{getattr(self, key)}", key=key)
        if self.size % MACRO_BLOCK:
            raise ConfigError(f"must be a multiple of {MACRO_BLOCK} (H.264 codes {MACRO_BLOCK}-pixel blocks), got "
                              f"{self.size}", key="size")
        if self.name is not None and not re.fullmatch(r"[\w.-]+", self.name):
            raise ConfigError(f"{self.name!r} is not a file name (letters, digits, '_', '-', '.')", key="name")

    @property
    def file_name(self) -> str:
        label = Path(self.policy_file).stem if self.policy_file else self.checkpoint
        return self.name or f"{label}_seed{self.seed}"

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(self.run_dir) / "rollouts"


@dataclasses.dataclass
class Rollout:
    """Every step of some episodes: the frame of the state it reached, its rewards and its success flag.

    ``model_reward`` is None for a policy trained on the ground truth (there is no model reward to show).
    """

    frames: np.ndarray  # (T, H, W, 3) uint8, the video frames
    episode: np.ndarray  # (T,) episode index of each step, from 0
    step: np.ndarray  # (T,) step within its episode, from 1
    ground_truth_reward: np.ndarray  # (T,)
    model_reward: np.ndarray | None  # (T,) or None
    success: np.ndarray  # (T,) bool
    states: np.ndarray  # (T, state_dim) info["sim_state"]
    fps: float

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_episodes(self) -> int:
        return int(self.episode[-1]) + 1

    def episode_lengths(self) -> np.ndarray:
        return np.bincount(self.episode)

    def rows(self) -> list[dict]:
        """The CSV rows, one per step (``model_reward`` empty without a model reward)."""
        model = self.model_reward if self.model_reward is not None else [None] * len(self)
        return [
            {"episode": int(e), "step": int(t), "model_reward": "" if m is None else float(m),
             "ground_truth_reward": float(g), "success": int(s)}
            for e, t, m, g, s in zip(self.episode, self.step, model, self.ground_truth_reward, self.success)
        ]

    def episode_summaries(self) -> list[dict]:
        """Per episode: steps, returns under both rewards, and success at its last step."""
        out = []
        for e in range(self.num_episodes):
            mask = self.episode == e
            out.append({
                "episode": e,
                "steps": int(mask.sum()),
                "ground_truth_return": float(self.ground_truth_reward[mask].sum()),
                "model_return": None if self.model_reward is None else float(self.model_reward[mask].sum()),
                "success_at_end": bool(self.success[mask][-1]),
            })
        return out


@dataclasses.dataclass
class PolicyVideo:
    """What :func:`film_policy` wrote: the three files and what they hold."""

    mp4: Path
    gif: Path
    csv: Path
    frames: int  # MP4 frames, one per env step
    frame_shape: tuple[int, int]  # (height, width) of an MP4 frame, strip included
    gif_frames: int
    fps: float
    policy_step: int  # env steps the policy had trained for (its num_timesteps)
    episodes: list[dict]  # Rollout.episode_summaries()


@contextlib.contextmanager
def caller_random_state_kept() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global generators on exit.

    Loading an SB3 policy reseeds all three with the seed it was saved with (``_setup_model`` calls
    ``set_random_seed``), and building a reward model draws initial weights; a video made during training must
    not change the training's random stream.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def check_video_encoder() -> None:
    """Raise ``ImportError`` naming the package if imageio's ffmpeg plugin (``imageio-ffmpeg``) is missing."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ImportError("policy videos need imageio's ffmpeg plugin: pip install 'imageio[ffmpeg]' "
                          "(training: or set video: false)")


# -- loading and checking ------------------------------------------------------------------------------------


def load_training_config(run_dir: str | Path) -> TrainPolicyConfig:
    """The :class:`TrainPolicyConfig` of one seed, rebuilt from ``<run_dir>/run_config.json``.

    The file holds the training config without ``seeds`` and ``output_dir``, plus the run's ``seed``
    (:func:`vlm_rewards.robotics.make_trainers`); the result has ``seeds=[seed]`` and ``output_dir`` the parent.
    ``rl.total_timesteps`` is not in the file (raising it extends a run): for a finished run it is the steps
    the run finished at (``final/eval.json``), so rerunning the config trains no further; otherwise the default.
    A missing file is a ``FileNotFoundError``; a file that is not such a config is a :class:`ConfigError`
    naming it.
    """
    run_dir = Path(run_dir)
    saved = run_dir / RunDir.CONFIG_FILE
    if not saved.is_file():
        raise FileNotFoundError(f"{saved} not found: {run_dir} is not a seed run directory of "
                                "recipes/train_policy.py (<output_dir>/seed_<s>)")
    try:
        values = json.loads(saved.read_text())
    except json.JSONDecodeError as e:
        raise PolicyVideoError(f"{saved}: invalid JSON: {e.msg} (line {e.lineno})") from None
    if not isinstance(values, dict) or "seed" not in values:
        raise PolicyVideoError(f"{saved}: not the config of one training seed (no 'seed' key)")
    seed = values.pop("seed")
    final_eval = run_dir / "final" / "eval.json"
    if final_eval.is_file() and isinstance(values.get("rl"), dict):
        values["rl"] = {**values["rl"], "total_timesteps": json.loads(final_eval.read_text())["num_timesteps"]}
    return config_from_dict(TrainPolicyConfig, {**values, "seeds": [seed], "output_dir": str(run_dir.parent)},
                            source=str(saved))


def load_policy(path: str | Path, train_cfg: TrainPolicyConfig) -> BaseAlgorithm:
    """The SB3 policy in ``path`` (loaded on the CPU), checked against the task of ``train_cfg``.

    A missing file is a ``FileNotFoundError``; a file that does not load as the config's algorithm, or a
    policy whose observation or action space differs from the task's, is a :class:`PolicyVideoError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file {path} not found")
    algo = ALGORITHMS[train_cfg.rl.algorithm]
    try:
        with caller_random_state_kept():
            policy = algo.load(path, device="cpu")
    except Exception as e:  # noqa: BLE001 - SB3 raises value, type, attribute, assertion errors for a foreign file
        raise PolicyVideoError(f"{path}: not a {algo.__name__} policy file (the run trained rl.algorithm "
                               f"{train_cfg.rl.algorithm!r}): {type(e).__name__}: {e}") from None
    check_policy_fits_task(policy, train_cfg.task, train_cfg.env_kwargs, str(path))
    return policy


def check_policy_fits_task(policy: BaseAlgorithm, task_name: str, env_kwargs: dict[str, Any], where: str) -> None:
    """Raise :class:`PolicyVideoError` if the policy's observation or action space is not the task's."""
    env = get_task(task_name).make_env(**env_kwargs)
    try:
        for what, theirs, ours in (("observation", policy.observation_space, env.observation_space),
                                   ("action", policy.action_space, env.action_space)):
            if theirs != ours:
                raise PolicyVideoError(f"{where} was not trained on task {task_name!r}: its {what} space is "
                                       f"{theirs}, the task's is {ours}")
    finally:
        env.close()


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and write a scratch file there; raise :class:`PolicyVideoError` if it fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise PolicyVideoError(f"output directory {directory} is not writable: {e.strerror or e}") from None


# -- rollout -------------------------------------------------------------------------------------------------


def rollout_policy(
    policy: BaseAlgorithm,
    train_cfg: TrainPolicyConfig,
    reward_model: RewardModel | None,
    *,
    episodes: int = 1,
    seed: int = 0,
    deterministic: bool = True,
    size: int = 256,
) -> Rollout:
    """Run ``episodes`` episodes of ``policy`` in a fresh env of the run's task and record every step.

    The env is the training env without its vector wrappers: ``GroundTruthFromState`` on the task's env
    with the run's ``env_kwargs``. With a ``reward_model`` it renders at ``reward.render_size`` and each
    step's frame is scored in batches of ``reward.batch_size``, the reward the agent trained on; the video
    frame is the same state rendered at ``size`` by a second env (the same frame when the sizes agree).
    Sampled actions (``deterministic=False``) come from torch's generator seeded with ``seed``; the caller's
    random state is left as it was.
    """
    task = get_task(train_cfg.task)
    reward_size = train_cfg.reward.render_size if reward_model is not None else size
    env = ground_truth_env_fn(task, train_cfg.env_kwargs)(render_mode="rgb_array", width=reward_size,
                                                          height=reward_size)
    video_env = None
    if reward_size != size:
        video_env = task.make_env(**{**train_cfg.env_kwargs, "render_mode": "rgb_array", "width": size,
                                     "height": size})
        video_env.reset(seed=seed)
    frames, states, ground_truth, success, episode_ids, steps = [], [], [], [], [], []
    model_rewards: list[float] = []
    pending: list[np.ndarray] = []  # frames waiting for the reward model

    def score_pending() -> None:
        if pending:
            model_rewards.extend(reward_model(np.stack(pending)).tolist())
            pending.clear()

    try:
        with caller_random_state_kept():
            torch.manual_seed(seed)
            for episode in range(episodes):
                obs, _ = env.reset(seed=seed if episode == 0 else None)
                step, done = 0, False
                while not done:
                    action, _ = policy.predict(obs, deterministic=deterministic)
                    obs, reward, terminated, truncated, info = env.step(action)
                    done, step = terminated or truncated, step + 1
                    frame = env.render()
                    if reward_model is not None:
                        pending.append(frame)
                        if len(pending) == train_cfg.reward.batch_size:
                            score_pending()
                    if video_env is not None:
                        video_env.unwrapped.set_sim_state(info["sim_state"])
                        frame = video_env.render()
                    frames.append(frame)
                    states.append(info["sim_state"])
                    ground_truth.append(reward)
                    success.append(bool(info["is_success"]))
                    episode_ids.append(episode)
                    steps.append(step)
        score_pending()
        fps = float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
        if video_env is not None:
            video_env.close()
    return Rollout(
        frames=np.stack(frames), episode=np.array(episode_ids), step=np.array(steps),
        ground_truth_reward=np.array(ground_truth, dtype=np.float64),
        model_reward=np.array(model_rewards, dtype=np.float64) if reward_model is not None else None,
        success=np.array(success), states=np.stack(states), fps=fps,
    )


# -- drawing -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Curve:
    """One reward as drawn: its pixel rows, colour, legend label and the decimals that tell its range apart."""

    label: str
    values: np.ndarray
    rows: np.ndarray
    color: tuple[int, int, int]
    decimals: int

    def format(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"


class RewardStrip:
    """The strip drawn below each frame of a :class:`Rollout` at a given width.

    Two lines of text (episode, step and success; each reward's value) above a plot of both rewards from the
    episode's first step to the current one. Each reward is scaled to its own range over the rollout, and that
    range is written beside the plot like twin axes (ground truth on the left, model on the right), so a
    curve that spans the plot over 0.9996..1.0 says so. The background, the plot frame and the range labels
    are drawn once; the plot is kept between frames and each frame only adds the segments of the steps since
    the last one drawn, so a frame costs a few text draws whatever the episode's length. The strip's height
    makes frame plus strip a multiple of 16 pixels high, so the MP4 encoder never rescales.
    """

    def __init__(self, rollout: Rollout, width: int, frame_height: int):
        self.rollout, self.width = rollout, width
        self.font = ImageFont.load_default(size=max(8, width // 22))
        small_font = ImageFont.load_default(size=max(7, width // 28))
        self.line = self.font.size + 4
        min_height = 2 * self.line + max(28, width // 4)
        self.height = -(-(frame_height + min_height) // MACRO_BLOCK) * MACRO_BLOCK - frame_height
        self.lengths = rollout.episode_lengths()
        rewards = [("true", rollout.ground_truth_reward, TRUE_COLOR)]
        if rollout.model_reward is not None:
            rewards.append(("model", rollout.model_reward, MODEL_COLOR))
        labels = [self._range_labels(values) for _, values, _ in rewards]
        margins = [max(small_font.getlength(text) for text in pair) + 3 for pair in labels] + [0]
        self.plot_origin = (int(margins[0]) + 2, 2 * self.line + 2)
        self.plot_size = (width - self.plot_origin[0] - int(margins[1]) - 2, self.height - self.plot_origin[1] - 3)
        plot_w, plot_h = self.plot_size
        self.x = 1 + (rollout.step - 1) * (plot_w - 3) / max(1, int(self.lengths.max()) - 1)
        self.curves = [_Curve(label, values, self._rows(values), color, self._decimals(values))
                       for label, values, color in rewards]

        self.blank_plot = Image.new("RGB", self.plot_size, BACKGROUND)
        grid = ImageDraw.Draw(self.blank_plot)
        grid.rectangle([0, 0, plot_w - 1, plot_h - 1], outline=GRID_COLOR)
        grid.line([0, plot_h // 2, plot_w - 1, plot_h // 2], fill=GRID_COLOR)
        self.background = Image.new("RGB", (width, self.height), BACKGROUND)
        axes = ImageDraw.Draw(self.background)
        top, bottom = self.plot_origin[1], self.plot_origin[1] + plot_h - 1
        for (high, low), curve, right in zip(labels, self.curves, (False, True)):
            for text, y, anchor in ((high, top, "t"), (low, bottom, "b")):
                x = self.plot_origin[0] + plot_w + 2 if right else self.plot_origin[0] - 2
                axes.text((x, y), text, fill=curve.color, font=small_font, anchor=("l" if right else "r") + anchor)
        self._plot: Image.Image | None = None
        self._drawn = -1  # index of the last step drawn on self._plot

    @staticmethod
    def _decimals(values: np.ndarray) -> int:
        """Enough decimals that the two ends of the range differ (3 at least, 6 at most)."""
        span = float(values.max() - values.min())
        return int(np.clip(np.ceil(-np.log10(span)), 3, 6)) if span > 0 else 3

    def _range_labels(self, values: np.ndarray) -> tuple[str, str]:
        decimals = self._decimals(values)
        return f"{values.max():.{decimals}f}", f"{values.min():.{decimals}f}"

    def _rows(self, values: np.ndarray) -> np.ndarray:
        """Pixel rows for ``values``: their range over the rollout spans the plot (a constant sits mid-height)."""
        low, high = float(values.min()), float(values.max())
        plot_h = self.plot_size[1]
        unit = (values - low) / (high - low) if high > low else np.full_like(values, 0.5)
        return (plot_h - 2) - unit * (plot_h - 3)

    def draw(self, index: int) -> np.ndarray:
        """The strip (height, width, 3) uint8 for step ``index`` of the rollout; indices must not decrease."""
        rollout = self.rollout
        episode = int(rollout.episode[index])
        start = index - int(rollout.step[index]) + 1  # the episode's first step
        if self._plot is None or self._drawn < start or self._drawn > index:
            self._plot, self._drawn = self.blank_plot.copy(), start - 1
        pen = ImageDraw.Draw(self._plot)
        for curve in self.curves:
            points = [(self.x[j], curve.rows[j]) for j in range(max(self._drawn, start), index + 1)]
            if len(points) > 1:
                pen.line(points, fill=curve.color, width=2)
            elif index == start:
                pen.point(points, fill=curve.color)
        self._drawn = index

        strip = self.background.copy()
        strip.paste(self._plot, self.plot_origin)
        text = ImageDraw.Draw(strip)
        text.text((4, 2), f"episode {episode + 1}/{rollout.num_episodes}  step {rollout.step[index]}/"
                          f"{self.lengths[episode]}", fill=TEXT_COLOR, font=self.font)
        if rollout.success[index]:
            label = "success"
            left = self.width - 4 - text.textlength(label, font=self.font) - 4
            text.rectangle([left, 1, self.width - 3, self.line - 1], fill=SUCCESS_COLOR)
            text.text((left + 2, 2), label, fill=BACKGROUND, font=self.font)
        else:
            label = "no success"
            text.text((self.width - 4 - text.textlength(label, font=self.font), 2), label, fill=MUTED_COLOR,
                      font=self.font)
        y = 2 + self.line
        for curve, x in zip(self.curves, (4, self.width // 2)):
            text.text((x, y), f"{curve.label} {curve.format(curve.values[index])}", fill=curve.color, font=self.font)
        if rollout.model_reward is None:
            text.text((self.width // 2, y), "no model reward", fill=MUTED_COLOR, font=self.font)
        return np.asarray(strip)


def composed_frames(rollout: Rollout, width: int, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Video frames: the rollout's frame at ``width`` (aspect kept) above its :class:`RewardStrip`."""
    height, frame_width = rollout.frames.shape[1:3]
    frame_height = round(height * width / frame_width)
    strip = RewardStrip(rollout, width, frame_height)
    for i in indices:
        frame = rollout.frames[i]
        if frame.shape[:2] != (frame_height, width):
            frame = np.asarray(Image.fromarray(frame).resize((width, frame_height), Image.Resampling.BILINEAR))
        yield np.concatenate([frame, strip.draw(i)], axis=0)


def write_gif(path: Path, frames: np.ndarray, duration_ms: int) -> None:
    """An endlessly looping GIF of ``frames`` (N, H, W, 3) uint8, all mapped onto one 255-colour palette.

    The palette comes from about ten frames spread over the video plus the strip's colours; choosing a
    palette per frame (what imageio and PIL do by default) took ten times longer for a 250-frame GIF.
    """
    sample = frames[:: max(1, len(frames) // 10)].reshape(-1, 3)
    strip_colors = np.array([MODEL_COLOR, TRUE_COLOR, SUCCESS_COLOR, TEXT_COLOR, MUTED_COLOR, GRID_COLOR,
                             BACKGROUND], np.uint8).repeat(256, axis=0)
    palette = Image.fromarray(np.concatenate([sample, strip_colors])[None]).quantize(
        255, method=Image.Quantize.FASTOCTREE)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def write_rollout_video(
    rollout: Rollout, output_dir: str | Path, name: str, *, gif_size: int = 160, gif_stride: int = 2,
    policy_step: int = 0,
) -> PolicyVideo:
    """Write ``<name>.mp4`` (every step), ``<name>.gif`` (every ``gif_stride``-th step at ``gif_size``) and
    ``<name>.csv`` (every step's rewards) into ``output_dir``, each atomically; return what was written."""
    import imageio.v2 as imageio

    out = Path(output_dir)
    mp4, gif, csv = (out / f"{name}.{ext}" for ext in ("mp4", "gif", "csv"))
    width = rollout.frames.shape[2]
    frame_shape = (0, 0)
    # quality 7 is x264's constant rate factor 15: the strip's small text stays sharp
    writer_options = {"format": "FFMPEG", "mode": "I", "fps": rollout.fps, "codec": "libx264", "quality": 7,
                      "pixelformat": "yuv420p", "macro_block_size": MACRO_BLOCK, "ffmpeg_log_level": "error"}
    with atomic_path(mp4) as tmp, imageio.get_writer(tmp, **writer_options) as writer:
        for frame in composed_frames(rollout, width, range(len(rollout))):
            writer.append_data(frame)
            frame_shape = frame.shape[:2]
    last = len(rollout) - 1  # the GIF ends on the last step, as the MP4 does
    gif_frames = np.stack(list(composed_frames(rollout, gif_size, range(last % gif_stride, last + 1, gif_stride))))
    with atomic_path(gif) as tmp:
        write_gif(tmp, gif_frames, round(1000 * gif_stride / rollout.fps))
    write_csv_atomic(csv, rollout.rows())
    return PolicyVideo(mp4=mp4, gif=gif, csv=csv, frames=len(rollout), frame_shape=tuple(frame_shape),
                       gif_frames=len(gif_frames), fps=rollout.fps, policy_step=policy_step,
                       episodes=rollout.episode_summaries())


# -- entry points --------------------------------------------------------------------------------------------


def film_policy(
    policy: BaseAlgorithm,
    train_cfg: TrainPolicyConfig,
    output_dir: str | Path,
    name: str,
    *,
    reward_model: RewardModel | None = None,
    episodes: int = 1,
    seed: int = 0,
    deterministic: bool | None = None,
    size: int = 256,
    gif_size: int = 160,
    gif_stride: int = 2,
) -> PolicyVideo:
    """Roll out ``policy`` on the task of ``train_cfg`` and write its video, GIF and CSV into ``output_dir``.

    The reward drawn is ``train_cfg``'s: its reward model (``reward_model``, or one built from
    ``train_cfg.reward``; pass the training's own to avoid loading it twice) or none for a ground-truth run.
    ``deterministic`` None acts as the run evaluated (``rl.deterministic``). The output directory is checked
    before the rollout (:class:`PolicyVideoError`); a policy from a file is checked by :func:`load_policy`.
    """
    check_video_encoder()
    check_writable(Path(output_dir))
    if train_cfg.reward.source == "ground_truth":
        reward_model = None
    elif reward_model is None:
        if train_cfg.reward.model_config is not None:
            logger.warning("reward.model_config builds a CLIP with random weights: the model reward in this video "
                           "comes from new random weights, not from the model the agent was trained on")
        with caller_random_state_kept():  # models initialise weights before loading theirs
            reward_model = build_reward_model(train_cfg.reward, get_task(train_cfg.task))
    deterministic = train_cfg.rl.deterministic if deterministic is None else deterministic
    rollout = rollout_policy(policy, train_cfg, reward_model, episodes=episodes, seed=seed,
                             deterministic=deterministic, size=size)
    return write_rollout_video(rollout, output_dir, name, gif_size=gif_size, gif_stride=gif_stride,
                               policy_step=int(policy.num_timesteps))


def record_policy_video(config: PolicyVideoConfig, reward_model: RewardModel | None = None) -> PolicyVideo:
    """Film the policy ``config`` names (see :class:`PolicyVideoConfig` and the module docstring).

    Everything is checked before the rollout: the run's config, the policy file (missing, not the run's
    algorithm, or trained on another task: its spaces differ), the output directory. ``reward_model`` is the
    run's reward model if the caller has it loaded already.
    """
    train_cfg = load_training_config(config.run_dir)
    policy_file = Path(config.policy_file) if config.policy_file else Path(config.run_dir) / config.checkpoint / "model.zip"
    if not policy_file.is_file():
        hint = {
            "final": "has the training finished? (checkpoint 'checkpoint' films a run that is still training)",
            "checkpoint": "a run has a checkpoint once it has trained save_freq steps",
        }[config.checkpoint]
        raise FileNotFoundError(f"policy file {policy_file} not found" + ("" if config.policy_file else f": {hint}"))
    policy = load_policy(policy_file, train_cfg)
    return film_policy(
        policy, train_cfg, config.output_path, config.file_name, reward_model=reward_model,
        episodes=config.episodes, seed=config.seed, deterministic=config.deterministic, size=config.size,
        gif_size=config.gif_size, gif_stride=config.gif_stride,
    )


def log_video_to_tensorboard(gif: str | Path, log_dir: str | Path, tag: str, step: int) -> None:
    """Add a GIF to TensorBoard as an image summary: TensorBoard's Images tab plays it.

    This is the summary ``SummaryWriter.add_video`` writes (an image whose encoded string is a GIF), written
    here from a GIF already made: ``add_video`` builds its GIF with ``moviepy.editor``, which moviepy 2 no
    longer has (and moviepy is not installed); without it ``add_video`` prints a notice and logs no image.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard.writer import FileWriter

    data = Path(gif).read_bytes()
    with Image.open(gif) as image:
        width, height = image.size
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
    writer = FileWriter(str(log_dir))
    try:
        writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
    finally:
        writer.close()


def sb3_tensorboard_run(tensorboard_dir: str | Path) -> Path:
    """The newest SB3 log directory (``<tb_log_name>_<n>``) under ``tensorboard_dir``, where the curves are."""
    runs = [p for p in Path(tensorboard_dir).glob("*_*") if p.is_dir() and p.name.rsplit("_", 1)[1].isdigit()]
    if not runs:
        return Path(tensorboard_dir) / "video"
    return max(runs, key=lambda p: int(p.name.rsplit("_", 1)[1]))


def record_final_video(run: RunDir, seed: int, reward_model: RewardModel | None, tensorboard: bool) -> Path:
    """After a seed's final evaluation: the video of one greedy-as-evaluated episode, as the stage ``video/``.

    ``run`` is the seed's run directory (with ``final/model.zip``). The episode is a separate evaluation
    rollout reset with ``seed + FINAL_VIDEO_SEED_OFFSET``; ``video/final.{mp4,gif,csv}`` are written as one
    stage (a rerun skips it) and, with ``tensorboard``, the GIF goes into the seed's SB3 TensorBoard log as
    ``eval/video`` at the policy's step. Returns the stage directory.
    """

    def build(out: Path) -> None:
        config = PolicyVideoConfig(run_dir=str(run.path), output_dir=str(out), name="final",
                                   seed=seed + FINAL_VIDEO_SEED_OFFSET)
        video = record_policy_video(config, reward_model)
        if tensorboard:
            log_video_to_tensorboard(video.gif, sb3_tensorboard_run(run.path / "tensorboard"), "eval/video",
                                     video.policy_step)

    return run.stage("video", build)


def record_flagged_window(
    policy: BaseAlgorithm | str | Path,
    train_cfg: TrainPolicyConfig,
    window: tuple[int, int],
    output_dir: str | Path,
    *,
    reward_model: RewardModel | None = None,
    details: dict | None = None,
    episodes: int = 1,
    seed: int = 0,
) -> PolicyVideo:
    """The hook for the proxy-versus-true reward monitor: film the policy of a window it flagged.

    The monitor (``rlhf.monitor``, issue 14) flags windows of env steps ``window = (first, last)`` where the
    training (proxy) reward rises while the ground truth falls. ``rlhf`` cannot import ``vlm_rewards``, so the
    robotics experiment hands this function to the monitor as its callback, with ``train_cfg`` bound. The
    monitor calls it

    - during training, from an SB3 callback as the window closes: ``policy`` is the learner itself
      (``callback.model``), the policy that acted in the window; the episodes run in a separate env, never
      in the training envs, and leave the training's random state as it was;
    - after training: ``policy`` is the saved policy nearest the window (``checkpoint/model.zip`` while the run
      trains, else ``final/model.zip``).

    Writes ``<output_dir>/window_<first>-<last>/{window.mp4, window.gif, window.csv, window.json}``; the JSON
    holds the window, the step the filmed policy had reached (so its distance from the window is plain), the
    episodes' returns under both rewards, and the monitor's ``details`` (e.g. the two rewards' trends).
    A window that is not two steps ``0 <= first <= last`` is a ``ValueError``, before any rollout.
    """
    if len(window) != 2 or not 0 <= window[0] <= window[1]:
        raise ValueError(f"window must be (first step, last step) with 0 <= first <= last, got {window!r}")
    first, last = (int(step) for step in window)
    if not isinstance(policy, BaseAlgorithm):
        policy = load_policy(policy, train_cfg)
    out = Path(output_dir) / f"window_{first}-{last}"
    video = film_policy(policy, train_cfg, out, "window", reward_model=reward_model, episodes=episodes, seed=seed)
    write_json_atomic(out / "window.json", {
        "window": [first, last], "policy_step": video.policy_step, "task": train_cfg.task,
        "reward": train_cfg.reward.source, "episodes": video.episodes, "details": details or {},
    })
    return video
