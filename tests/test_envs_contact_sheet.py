"""The contact-sheet eval script: one labelled frame per task's reference state, plus a JSON summary."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_contact_sheet_script_writes_png_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = "cartpole-upright,mountaincar-peak,humanoid-kneeling,humanoid-arms-raised"
    argv = ["contact_sheet.py", "--output_dir", str(tmp_path), "--tasks", tasks, "--width", "64", "--height", "48"]
    monkeypatch.setattr(sys, "argv", [*argv, "--columns", "2"])
    runpy.run_path(str(REPO / "recipes/eval/contact_sheet.py"), run_name="__main__")
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png"))
    assert sheet.shape[1] == 2 * 64 and sheet.shape[0] > 2 * 48  # 2x2 grid plus label strips
    cells = [sheet[r : r + 48, c : c + 64] for r in (0, sheet.shape[0] // 2) for c in (0, 64)]
    assert all(cell.std() > 5 for cell in cells)
    rows = json.loads((tmp_path / "contact_sheet.json").read_text())
    assert [r["task"] for r in rows] == tasks.split(",")
    assert all(r["success"] and r["reward"] == 1.0 for r in rows)
    assert rows[2]["caption"].startswith("a humanoid robot kneeling")


def test_unknown_task_names_the_known_ones(tmp_path: Path) -> None:
    from _recipes import load_recipe

    contact_sheet = load_recipe("eval/contact_sheet.py")
    with pytest.raises(KeyError, match="humanoid-kneeling"):
        contact_sheet.main(["--output_dir", str(tmp_path), "--tasks", "humanoid-sitting"])
    assert not (tmp_path / "contact_sheet.png").exists()
