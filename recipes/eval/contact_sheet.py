"""Contact sheet of every task's reference state (the humanoid reference poses, the upright pole, the
car at the flag), for people to check what each task's goal looks like and what a reward model sees.

    MUJOCO_GL=egl python recipes/eval/contact_sheet.py --config recipes/configs/contact_sheet.yaml
    MUJOCO_GL=egl python recipes/eval/contact_sheet.py --tasks humanoid-kneeling,humanoid-lotus --width 320

Writes ``<output_dir>/contact_sheet.png`` and ``<output_dir>/contact_sheet.json`` (per task: goal prompt,
caption of the reference state, success and ground-truth reward there); prints one line per task and the paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envs import get_task, task_names
from envs.contact_sheet import contact_sheet, render_reference_frames
from rlhf.artifacts import atomic_path, write_json_atomic
from rlhf.config import load_config


@dataclass
class ContactSheetConfig:
    """Which tasks to draw (comma-separated names, or "all"), at what frame size, and where to write."""

    output_dir: str = "runs/contact_sheet"
    tasks: str = "all"
    width: int = 224
    height: int = 224
    columns: int = 5
    fast_render: bool = False  # reference frames are few: use the full-quality MuJoCo settings


def main(argv: list[str] | None = None) -> list[dict]:
    config = load_config(ContactSheetConfig, argv)
    names = task_names() if config.tasks == "all" else [n.strip() for n in config.tasks.split(",") if n.strip()]
    tasks = [get_task(name) for name in names]  # unknown names fail here, listing the known ones
    frames = render_reference_frames(names, config.width, config.height, fast_render=config.fast_render)
    rows = []
    for task in tasks:
        state = task.reference_state()
        rows.append(
            {
                "task": task.name,
                "goal_prompt": task.goal_prompts[0],
                "caption": task.caption(state),
                "success": task.success(state),
                "reward": task.reward(state),
            }
        )
        print(
            f"{task.name}: success={rows[-1]['success']} reward={rows[-1]['reward']:.2f} caption={rows[-1]['caption']!r}"
        )
    out = Path(config.output_dir)
    with atomic_path(out / "contact_sheet.png") as tmp:
        contact_sheet(frames, config.columns).save(tmp, format="PNG")
    write_json_atomic(out / "contact_sheet.json", rows)
    print(f"contact sheet: {out / 'contact_sheet.png'}")
    print(f"details: {out / 'contact_sheet.json'}")
    return rows


if __name__ == "__main__":
    main()
