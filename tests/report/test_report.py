"""write_report on synthetic run directories: valid PNGs, a page that shows them, no crash on
missing optional inputs, precise errors on malformed ones."""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from homolr.errors import DataError
from homolr.learning import LogisticModel, Scaler
from homolr.report import (
    RunRecord,
    bytes_per_round,
    load_metrics,
    load_validation_scores,
    select_run,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN = "run-7f3a"


def record(iteration: int, run_id: str = RUN, **extra: object) -> dict[str, object]:
    return {
        "run_id": run_id,
        "iteration": iteration,
        "acc": 0.8 + 0.15 * (1 - math.exp(-iteration / 80)),
        "loss": 0.7 * math.exp(-iteration / 100) + 0.08,
        "auc": 0.9 + 0.08 * (1 - math.exp(-iteration / 60)),
        "seconds": 0.9 * (iteration + 1),
        "bytes": 250_000 * (10 if iteration else 1),
        "workers": 2,
        **extra,
    }


def make_run(
    tmp_path: Path,
    *,
    epsilon: bool = True,
    scores: bool = True,
    model: bool = True,
    metrics: bool = True,
) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    if metrics:
        lines = [
            json.dumps(record(t, epsilon=0.05 * t) if epsilon else record(t))
            for t in range(0, 400, 10)
        ]
        lines.insert(0, json.dumps(record(0, run_id="older-run")))  # an earlier run, appended to
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    if scores:
        y = rng.integers(0, 2, 114)
        p = 1 / (1 + np.exp(-(2.5 * (2 * y - 1) + rng.normal(size=114) * 1.5)))
        rows = ["y,probability"] + [f"{a},{b:.6f}" for a, b in zip(y, p, strict=True)]
        (run / "validation_scores.csv").write_text("\n".join(rows) + "\n")
    if model:
        names = [f"x{j}" for j in range(30)]
        scaler = Scaler(rng.normal(size=30) * 100 + 500, rng.uniform(1, 50, size=30))
        metadata = {
            "run_id": RUN,
            "mode": "encrypted",
            "key_bits": 2048,
            "rounds": 400,
            "finished": "iterations",
            "validation": {"accuracy": 0.95, "loss": 0.1, "auc": 0.99},
            "plan": {"iterations": 400, "learning_rate": 0.3, "schedule": "constant"},
            "federation": {
                "name": "hospitals-<script>",
                "hash": "sha256:" + "ab" * 32,
                "members": ["guest", "host"],
            },
        }
        LogisticModel.from_weights(rng.normal(size=31), names, metadata, scaler).save(
            run / "model.json"
        )
    return run


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_full_report(tmp_path: Path) -> None:
    import matplotlib.image

    paths = write_report(make_run(tmp_path))
    assert set(paths.figures) == {"training", "roc", "calibration", "traffic", "privacy"}
    page = paths.html.read_text()
    for key, path in paths.figures.items():
        width, height = png_size(path)
        assert 400 <= width <= 1200 and 300 <= height <= 1200, (key, width, height)
        assert 5_000 < path.stat().st_size < 1_000_000, (key, path.stat().st_size)
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[:2] == (height, width)
        assert float(pixels[..., :3].std()) > 0.05  # not a blank image
        embedded = base64.b64encode(path.read_bytes()).decode()
        assert f"data:image/png;base64,{embedded}" in page, f"{key} not embedded"
        assert f"data-file='{path.name}'" in page
    assert paths.html == tmp_path / "run" / "report" / "report.html"
    assert "hospitals-&lt;script&gt;" in page and "<script>" not in page
    assert "sha256:" + "ab" * 32 in page and "<li>guest</li>" in page and "<li>host</li>" in page
    assert "learning_rate" in page and "standardised by the federation" in page
    assert f"homolr run {RUN}" in page
    assert "1 other run(s), not shown" in " ".join(paths.notes)
    assert page.count("<figure") == 5


def test_missing_optional_inputs_are_skipped_with_notes(tmp_path: Path) -> None:
    paths = write_report(make_run(tmp_path, epsilon=False, scores=False))
    assert set(paths.figures) == {"training", "traffic"}
    notes = " ".join(paths.notes)
    assert "no epsilon" in notes and "validation_scores.csv" in notes
    page = paths.html.read_text()
    assert "no epsilon" in page and page.count("<figure") == 2


def test_an_unfinished_run_without_model_or_scores(tmp_path: Path) -> None:
    paths = write_report(make_run(tmp_path, model=False, scores=False))
    assert "training" in paths.figures
    assert any("model.json" in n for n in paths.notes)
    assert f"homolr run {RUN}" in paths.html.read_text()


def test_an_empty_run_directory_still_gives_a_page(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = write_report(empty)
    assert paths.figures == {} and len(paths.notes) == 3
    assert paths.html.is_file()


def test_stale_figures_are_removed_and_out_dir_is_honoured(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    out = tmp_path / "elsewhere"
    first = write_report(run, out_dir=out)
    assert first.figures["roc"].parent == out
    (run / "validation_scores.csv").unlink()
    second = write_report(run, out_dir=out)
    assert "roc" not in second.figures and not (out / "roc.png").exists()


def test_single_class_validation_set_skips_roc_only(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "validation_scores.csv").write_text("probability,y\n0.9,1\n0.7,1\n0.2,1\n")
    paths = write_report(run)
    assert "roc" not in paths.figures and "calibration" in paths.figures
    assert any("single class" in n for n in paths.notes)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        write_report(tmp_path / "nope")


# ------------------------------------------------------------------------------ inputs


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"iteration": 1}', "field 'acc': missing"),
        (json.dumps({**record(1), "acc": "high"}), "field 'acc': expected a number"),
        (json.dumps({**record(1), "iteration": 1.5}), "field 'iteration': expected an integer"),
        (json.dumps({**record(1), "bytes": -3}), "field 'bytes': expected >= 0"),
        (json.dumps({**record(1), "loss": float("nan")}), "field 'loss': expected a finite"),
        (json.dumps({**record(1), "run_id": 5}), "field 'run_id'"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_metrics_name_file_line_and_field(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(record(0)) + "\n\n" + line + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3")) as info:
        load_metrics(path)
    assert needle in str(info.value)


def test_nan_auc_is_allowed_and_unknown_keys_ignored(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({**record(0), "auc": float("nan"), "future_key": 1}) + "\n")
    (only,) = load_metrics(path)
    assert math.isnan(only.auc) and only.epsilon is None


def rec(iteration: int, run_id: str | None, bytes_: int = 100) -> RunRecord:
    return RunRecord(iteration, 0.9, 0.3, 0.95, 1.0, bytes_, 2, run_id)


def test_select_run_picks_the_model_run_and_dedupes_resumed_iterations() -> None:
    records = [
        rec(0, "a"),
        rec(0, "b"),
        rec(10, "b"),
        rec(10, "b", 999),
        rec(20, "b"),
        rec(10, "a"),
    ]
    kept, notes = select_run(records, "b")
    assert [r.iteration for r in kept] == [0, 10, 20] and kept[1].bytes == 999
    assert any("other run" in n for n in notes) and any("repeated" in n for n in notes)
    last, _ = select_run(records, None)
    assert [r.run_id for r in last] == ["a", "a"]  # the last record is of run "a"
    unnamed, notes = select_run([rec(0, None), rec(10, None)], "whatever")
    assert len(unnamed) == 2 and notes == []
    _, notes = select_run(records, "zzz")
    assert any("no record of run zzz" in n for n in notes)


def test_bytes_per_round_divides_by_the_rounds_between_records() -> None:
    records = [rec(0, None, 100), rec(10, None, 5000), rec(30, None, 4000)]
    np.testing.assert_array_equal(bytes_per_round(records), [100.0, 500.0, 200.0])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("y,p\n1,0.5\n", "missing column(s) probability"),
        ("y,probability\n2,0.5\n", ":2: column 'y': label must be 0 or 1"),
        ("y,probability\n1,0.5\n0,1.5\n", ":3: column 'probability'"),
        ("y,probability\n1,nan\n", ":2: column 'probability'"),
        ("y,probability\n1\n", ":2: column 'probability': missing field"),
        ("y,probability\n", ":2: no rows"),
    ],
)
def test_malformed_validation_scores(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "validation_scores.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_validation_scores(path)
    assert str(path) in str(info.value) and needle in str(info.value)
