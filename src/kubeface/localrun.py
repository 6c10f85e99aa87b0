"""Run the training pipeline on this machine with the KFP local runner."""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import io
import json
import os
import re
import sys
import time
import warnings
from importlib import resources
from pathlib import Path

from kubeface import progress
from kubeface.errors import KubefaceError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_DONE = re.compile(r"Task '([^']+)' finished with status (\w+)")
ERROR_LINE = re.compile(r"^\s*(kubeface\.errors\.\w+|[A-Za-z_.]*Error|[A-Za-z_.]*Exception): ")


def bundled_demo() -> Path:
    """Return the demo photos shipped with kubeface (10 LFW people, 15 + 5 photos each)."""
    return Path(str(resources.files("kubeface") / "data" / "demo_lfw"))


def default_pipeline_root() -> Path:
    root = os.environ.get("KUBEFACE_HOME") or os.path.join(Path.home(), ".kubeface")
    return Path(root) / "runs"


class RunnerOutput(io.TextIOBase):
    """Stand-in for stdout during a local run: keeps the full log, shows progress and stages."""

    def __init__(self, log_path: Path, console, verbose: bool):
        self.log = open(log_path, "w", encoding="utf-8")
        self.console = console
        self.verbose = verbose
        self.buffer_text = ""
        self.bars = {}
        self.error_lines: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        self.buffer_text += text
        while "\n" in self.buffer_text:
            line, self.buffer_text = self.buffer_text.split("\n", 1)
            self._line(ANSI.sub("", line))
        return len(text)

    def _line(self, line: str) -> None:
        if self.verbose:
            self.console.write(line + "\n")
        parsed = progress.parse(line)
        if parsed:
            self._progress(*parsed)
            return
        done = TASK_DONE.search(line)
        if done:
            self._close_bars()
            if not self.verbose:
                mark = "done" if done.group(2) == "SUCCESS" else done.group(2).lower()
                self.console.write(f"  stage {done.group(1)}: {mark}\n")
            return
        if ERROR_LINE.match(line):
            self.error_lines.append(line.strip())

    def _progress(self, stage: str, count: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None or bar.total != total or count < bar.n:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=f"  {stage}", unit="img", file=self.console, leave=False,
                       disable=self.verbose)
            self.bars[stage] = bar
        bar.update(count - bar.n)

    def _close_bars(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars = {}

    def close(self) -> None:
        self._close_bars()
        self.log.close()
        super().close()


def run_pipeline(arguments: dict, pipeline_root: Path | None = None, verbose: bool = False) -> dict:
    """Run the pipeline through the KFP SubprocessRunner and return the summary dict."""
    from kfp import local

    from kubeface.pipelines.training import training_pipeline

    pipeline_root = Path(pipeline_root or default_pipeline_root())
    pipeline_root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = pipeline_root / f"run-{stamp}-{os.getpid()}.log"
    # Each task runs as a subprocess of this Python, in this environment: no per-task venv.
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    output = RunnerOutput(log_path, sys.stderr, verbose)
    start = time.perf_counter()
    # kfp.local indents task logs by replacing builtins.print. With two or more ParallelFor
    # iterations (kfp 2.17.3) the replacement outlives the run, so the original is put back here.
    original_print = builtins.print
    try:
        with contextlib.redirect_stdout(output), warnings.catch_warnings():
            # The runner warns that the component image is not used; that is intended here.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
            task = training_pipeline(**arguments)
    except RuntimeError as error:
        detail = output.error_lines[-1] if output.error_lines else str(error)
        # The task's traceback ends "kubeface.errors.DatasetError: <message>"; the message is enough.
        detail = re.sub(r"^\s*kubeface\.errors\.\w+: ", "", detail)
        raise KubefaceError(f"pipeline failed: {detail} (full log: {log_path})") from error
    finally:
        builtins.print = original_print
        output.close()
    summary = json.loads(task.output)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["log"] = str(log_path)
    return summary
