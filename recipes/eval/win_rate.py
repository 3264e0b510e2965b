"""Win rate of methods' summaries against reference summaries, judged by a reward model or an LM judge.

    python recipes/eval/win_rate.py --config recipes/configs/win_rate_cpu.yaml \\
        --summaries [ilf=runs/x/ilf.jsonl,sft=runs/x/sft.jsonl] --judge_model runs/reward_model_cpu
    python recipes/eval/win_rate.py --config recipes/configs/win_rate_cpu.yaml --judge lm \\
        --judge_model smollm2-135m-instruct --summaries [runs/x/ilf.jsonl]

Each ``summaries`` entry is a JSONL file of ``{"id", "summary"}`` rows (other keys are ignored, so
the ``summaries.jsonl`` files of ``recipes/eval/ilf_sample_efficiency.py`` work as they are),
optionally prefixed ``name=`` to name the method (default: the file's stem). Rows are matched by
``id`` to the posts of ``split`` in the SLF5K-format ``data``; the reference is the post's
``reference_field``. ``judge: reward_model`` compares reward-model scores of the two summaries;
``judge: lm`` asks a causal LM which summary is better in both orders (``rlhf.preference``).
Prints one line per method (win rate, 95% bootstrap CI from ``rlhf.metrics.win_rate``) and writes
``results.json``, ``results.csv``, ``outcomes.jsonl`` and ``win_rate.png`` to ``output_dir``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.prompts import summarize_prompt, summary_completion
from language_feedback.summarization_data import FIELDS, load_slf5k
from rlhf.artifacts import atomic_path, iter_jsonl, write_json_atomic, write_jsonl_atomic
from rlhf.config import load_config
from rlhf.metrics import win_rate
from rlhf.preference import PairwiseLMJudge, PreferenceRewardModel, compare


@dataclass
class WinRateConfig:
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "test"
    summaries: list[str] = field(default_factory=list)  # [name=]path.jsonl with {"id", "summary"} rows
    reference_field: str = "tldr_human_reference_summary"
    judge: str = "reward_model"  # reward_model | lm
    judge_model: str = ""  # reward-model directory (judge=reward_model) or causal LM name/path (judge=lm)
    batch_size: int = 8
    n_boot: int = 2000
    seed: int = 0
    output_dir: str = "runs/win_rate"


def read_summaries(entry: str, known_ids: set[str]) -> tuple[str, dict[str, str]]:
    """``[name=]path`` → (method name, {id: summary}); a bad row raises naming file and line."""
    name, _, path = entry.rpartition("=")
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"summaries file not found: {path}")
    out: dict[str, str] = {}
    for _, where, row in iter_jsonl(path):
        if "id" not in row or not isinstance(row.get("summary"), str):
            raise ValueError(f"{where}: expected an object with 'id' and a string 'summary'")
        sample_id = str(row["id"])
        if sample_id not in known_ids:
            raise ValueError(f"{where}: id {sample_id!r} is not a post of the evaluated data split")
        if sample_id in out:
            raise ValueError(f"{where}: duplicate id {sample_id!r}")
        out[sample_id] = row["summary"]
    if not out:
        raise ValueError(f"{path}: no summaries")
    return name or path.stem, out


def plot(rows: list[dict], judge: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 + 1.4 * len(rows)), 3.8))
    x = range(len(rows))
    values = [r["win_rate"] for r in rows]
    errors = [[v - r["low"] for v, r in zip(values, rows)], [r["high"] - v for v, r in zip(values, rows)]]
    ax.bar(x, values, yerr=errors, capsize=4, color="tab:blue")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="parity with reference")
    ax.set_xticks(list(x), [f"{r['method']}\n(n={r['n']})" for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate vs reference")
    ax.set_title(f"judge: {judge}\n(95% bootstrap CI)", fontsize=8)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = load_config(WinRateConfig, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not cfg.data or not cfg.summaries or not cfg.judge_model:
        raise SystemExit("pass --data (SLF5K format), --summaries [[name=]file.jsonl,...] and --judge_model")
    if cfg.reference_field not in FIELDS:
        raise SystemExit(f"--reference_field {cfg.reference_field!r}: expected one of {', '.join(FIELDS)}")
    posts = {s.id: s for s in load_slf5k(cfg.data, cfg.split)}
    if cfg.judge == "reward_model":
        judge, as_text = PreferenceRewardModel(cfg.judge_model, batch_size=cfg.batch_size), summary_completion
    elif cfg.judge == "lm":
        judge, as_text = PairwiseLMJudge(cfg.judge_model, batch_size=cfg.batch_size), str.strip
    else:
        raise SystemExit(f"--judge {cfg.judge!r}: expected reward_model or lm")
    judge_name = f"{cfg.judge}:{cfg.judge_model}"

    rows, per_item = [], []
    for entry in cfg.summaries:
        method, summaries = read_summaries(entry, set(posts))
        ids = list(summaries)
        missing = [i for i in ids if not getattr(posts[i], cfg.reference_field).strip()]
        if missing:
            raise ValueError(f"{entry}: posts {missing[:5]} have an empty {cfg.reference_field!r}")
        prompts = [summarize_prompt(posts[i].title, posts[i].post) for i in ids]
        references = [as_text(getattr(posts[i], cfg.reference_field)) for i in ids]
        outcomes = compare(judge, prompts, [as_text(summaries[i]) for i in ids], references)
        estimate = win_rate(outcomes, n_boot=cfg.n_boot, seed=cfg.seed)
        row = {"method": method, "n": len(ids), "win_rate": estimate.value, "low": estimate.low, "high": estimate.high,
               "wins": outcomes.count(1.0), "ties": outcomes.count(0.5), "losses": outcomes.count(0.0),
               "judge": judge_name}
        rows.append(row)
        per_item += [{"method": method, "id": i, "summary": summaries[i], "outcome": o} for i, o in zip(ids, outcomes)]
        print(f"{method}: win rate vs reference {estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}] "
              f"(n={len(ids)}, wins {row['wins']}, ties {row['ties']}, losses {row['losses']}, judge {judge_name})")

    out = Path(cfg.output_dir)
    write_json_atomic(out / "results.json", {"config": dataclasses.asdict(cfg), "results": rows})
    with atomic_path(out / "results.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_jsonl_atomic(out / "outcomes.jsonl", per_item)
    plot(rows, f"{cfg.judge}:{Path(cfg.judge_model).name}", out / "win_rate.png")
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'outcomes.jsonl'}, {out / 'win_rate.png'}")
    return rows


if __name__ == "__main__":
    main()
