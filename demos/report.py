"""What every demo writes to its output folder: `results.json`, `report.md` and figures.

results.json: {"demo", "quick", "metrics": {name: number}, "paper": {name: number}, "config": {...}, "seconds",
"figures": [file names]}; a metric that is not a finite number is written as null (JSON has no NaN).

A run that starts in a folder first replaces an earlier run's report.md by a note that a run is under way, and deletes
that run's results.json and the figures it lists or its report.md shows: a run stopped midway leaves no report that
looks complete beside files of its own. Every file is written to a temporary name and renamed, so none is ever
half-written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed (or available in CI)
import matplotlib.pyplot as plt  # noqa: E402


class Report:
    """Collects a demo's metrics, the paper's numbers beside them, its notes and figures; writes them at the end."""

    def __init__(self, demo: str, out: Path, quick: bool, config: dict):
        self.demo, self.out, self.quick, self.config = demo, Path(out), quick, config
        self.out.mkdir(parents=True, exist_ok=True)
        self._retire_earlier_run()
        self.metrics: dict[str, float] = {}
        self.paper: dict[str, float] = {}
        self.sections: list[str] = []
        self.figures: list[tuple[str, str]] = []
        self.start = time.perf_counter()

    def _retire_earlier_run(self) -> None:
        """Delete an earlier demo run's results.json and the figures it lists or its report.md shows (results
        written before the list existed), then say in report.md that a run is under way. Only a results.json that
        a demo wrote counts, and only plain files in this folder are deleted."""
        results, report = self.out / "results.json", self.out / "report.md"
        try:
            earlier = json.loads(results.read_text())
        except (OSError, ValueError):
            earlier = None
        if isinstance(earlier, dict) and "demo" in earlier:
            listed = earlier.get("figures")
            shown = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", report.read_text()) if report.is_file() else []
            for name in (listed if isinstance(listed, list) else []) + shown:
                path = self.out / str(name)
                if str(name) == path.name and path.is_file():  # a plain file here ("", "." and ".." are folders)
                    path.unlink()
            results.unlink()
        started = time.strftime("%Y-%m-%d %H:%M")
        _write_atomic(self.out / "report.md", f"# {self.demo}\n\nA run started here at {started} and has not "
                      "finished: it is still running, or it was stopped. Its figures, checkpoints and models may be "
                      "partial; its report replaces this note when it ends.\n")

    def metric(self, name: str, value: float, paper: float | None = None) -> None:
        """Record `name` (snake_case, saying what it measures) and, if given, the paper's or target's value."""
        self.metrics[name] = float(value)
        if paper is not None:
            self.paper[name] = float(paper)

    def section(self, title: str, text: str) -> None:
        self.sections.append(f"## {title}\n\n{text.strip()}\n")

    def figure(self, fig, filename: str, caption: str) -> Path:
        path = self.out / filename
        _replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight",
                                                          format=path.suffix.lstrip(".") or "png"))
        plt.close(fig)
        self.figures.append((filename, caption))
        return path

    def table(self) -> str:
        """The metrics as a Markdown table, the paper's (or target) value beside ours."""
        rows = ["| metric | ours | paper / target |", "|---|---:|---:|"]
        for name, value in self.metrics.items():
            ref = self.paper.get(name)
            rows.append(f"| {name} | {_fmt(value)} | {'' if ref is None else _fmt(ref)} |")
        return "\n".join(rows)

    def write(self) -> dict:
        seconds = time.perf_counter() - self.start
        results = {"demo": self.demo, "quick": self.quick, "metrics": self.metrics, "paper": self.paper,
                   "config": self.config, "seconds": round(seconds, 2), "figures": [name for name, _ in self.figures]}
        finite = {name: value if math.isfinite(value) else None for name, value in self.metrics.items()}
        _write_atomic(self.out / "results.json", json.dumps(results | {"metrics": finite}, indent=2))
        mode = "quick smoke run (`--quick`): numbers are not meaningful" if self.quick else "full run"
        parts = [f"# {self.demo}\n", f"{mode}; {seconds:.0f} s.\n", "## Results\n", self.table() + "\n"]
        parts += self.sections
        parts += [f"![{caption}]({name})\n\n*{caption}*\n" for name, caption in self.figures]
        parts.append("## Configuration\n\n```json\n" + json.dumps(self.config, indent=2) + "\n```\n")
        _write_atomic(self.out / "report.md", "\n".join(parts))
        return results


def problems(results: dict) -> list[str]:
    """What makes a demo's results unusable even though it ran: no metrics, or a metric that is not a finite
    number. `python -m demos all` fails on any, so that the CI smoke run checks more than the exit status."""
    if not results["metrics"]:
        return ["recorded no metrics"]
    return [f"metric {name} is {value}" for name, value in results["metrics"].items() if not math.isfinite(value)]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if value != 0 and abs(value) < 1e-3:  # a timing in seconds: four decimals would round it to 0.0001 or 0
        return f"{value:.3g}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"


def _replace_atomically(path: Path, write) -> None:
    """write(a temporary path beside `path`), then rename it to `path`: no reader sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_atomic(path: Path, text: str) -> None:
    _replace_atomically(path, lambda tmp: tmp.write_text(text))


def training_curves(history: list[dict], title: str):
    """Loss and accuracy per epoch, train beside test (and robust test accuracy where the records have it)."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in history], "o-", label="train")
    if "test_loss" in history[0]:
        ax_loss.plot(epochs, [r["test_loss"] for r in history], "s-", label="test")
        ax_acc.plot(epochs, [r["test_accuracy"] for r in history], "s-", label="test")
    if "test_robust_accuracy" in history[0]:
        ax_acc.plot(epochs, [r["test_robust_accuracy"] for r in history], "^-", label="test (PGD)")
    if "test_robust_accuracy_averaged" in history[0]:
        ax_acc.plot(epochs, [r["test_robust_accuracy_averaged"] for r in history], "v-",
                    label="test (PGD), averaged weights")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; numbers are formatted like the metrics table."""
    def cell(value):
        return _fmt(value) if isinstance(value, float) else str(value)

    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def checkpoint_path(out: Path, stem: str, settings: dict) -> Path:
    """out/models/<stem>_<digest>.npz, the digest a hash of the settings that shape the training, so that a run
    resumes only a checkpoint written with the same settings, never one of a --quick run or of another seed."""
    text = json.dumps({k: v for k, v in settings.items() if k not in ("out", "backend")}, sort_keys=True, default=str)
    path = Path(out) / "models" / f"{stem}_{hashlib.sha256(text.encode()).hexdigest()[:12]}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

