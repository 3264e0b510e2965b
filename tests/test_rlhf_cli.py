"""The command line every recipe shares: one-line errors without a traceback, a clean Ctrl-C, quiet logging."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from dataclasses import dataclass
    from rlhf.artifacts import RunDir
    from rlhf.cli import run_recipe
    from rlhf.config import ConfigError, load_config

    @dataclass
    class Config:
        output_dir: str = ""
        steps: int = 1

        def __post_init__(self):
            if self.steps < 1:
                raise ConfigError(f"must be >= 1, got {self.steps}", key="steps")

    def main(argv):
        config = load_config(Config, argv)
        run = RunDir(config.output_dir, {"steps": config.steps})
        run.stage("first", lambda out: None)

        def second(out):
            print("ready", flush=True)  # from inside the stage: the interrupt lands in it, however slow the start
            time.sleep(60)

        run.stage("second", second)

    run_recipe(main)
    """
)


def recipe(tmp_path):
    script = tmp_path / "recipe.py"
    script.write_text(SCRIPT)
    return script


def run(tmp_path, *args):
    return subprocess.run([sys.executable, str(recipe(tmp_path)), *args], check=False, capture_output=True, text=True, timeout=60)


def test_config_errors_are_one_message_without_traceback(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("output_dir: out\nsteps: 0\n")
    proc = run(tmp_path, "--config", str(config))
    assert proc.returncode == 2
    assert "c.yaml line 2: config key 'steps': must be >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # validation failed before the run directory was claimed
    debug = run(tmp_path, "--config", str(config), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_ctrl_c_says_where_to_resume_and_a_changed_config_is_refused_with_its_keys(tmp_path):
    out = str(tmp_path / "run")
    # A background job's SIGINT is ignored, and children inherit that: give the recipe the default, as a terminal does.
    proc = subprocess.Popen([sys.executable, str(recipe(tmp_path)), "--output_dir", out, "--steps", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted in stage 'second'; rerun the same command to resume from that stage" in err
    assert "Traceback" not in err
    again = run(tmp_path, "--output_dir", out, "--steps", "3")
    assert again.returncode == 2 and "steps: 2 → 3" in again.stderr


def test_an_interrupt_between_stages_names_the_last_finished_stage(tmp_path):
    from rlhf.artifacts import Progress, RunDir, progress

    run_dir = RunDir(tmp_path / "run")
    run_dir.stage("first", lambda out: None)
    assert progress.stage == "" and progress.finished == "first"
    assert "interrupted after stage 'first' finished" in progress.message()
    assert "in stage 'x'" in Progress(stage="x", finished="first").message()
    assert "before any stage started" in Progress().message()


def test_root_logger_noise_is_quiet_and_own_loggers_speak(tmp_path):
    script = tmp_path / "log.py"
    script.write_text(textwrap.dedent(
        """
        import logging
        from rlhf.cli import run_recipe

        def main(argv):
            logging.getLogger("some.library").info("library noise")
            logging.getLogger("rlhf.something").info("own progress")

        run_recipe(main)
        """
    ))
    proc = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert "own progress" in proc.stderr and "library noise" not in proc.stderr
