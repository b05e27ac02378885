"""The breast_homo files rebuilt from scikit-learn's copy match the published reference."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from homolr.learning import format_eval_line, load_csv, replay_reference
from homolr.learning.breast_homo import breast_homo_sets, breast_homo_split, write_breast_homo
from homolr.learning.data import REFERENCE_FEATURE_ORDER

LOG_LINE = re.compile(r"^\s*(iter: \d+\s+acc: \d\.\d{3}\s+loss: \d\.\d{3})\s*$", re.MULTILINE)
#: Label balance given in shared/data/README.md: (label 1, label 0) per part.
BALANCE = {"guest": (150, 77), "host": (137, 91), "test": (70, 44)}


def test_split_sizes_and_label_balance_as_documented() -> None:
    split = breast_homo_split()
    target = load_breast_cancer().target
    assert {part: len(ids) for part, ids in split.items()} == {
        "guest": 227,
        "host": 228,
        "test": 114,
    }
    for part, (ones, zeros) in BALANCE.items():
        labels = target[split[part]]
        assert (int(labels.sum()), int((labels == 0).sum())) == (ones, zeros)


def test_rebuilt_files_match_the_reference(tmp_path: Path, shared_data: Path) -> None:
    paths = write_breast_homo(tmp_path)
    assert [p.name for p in paths] == [f"breast_homo_{n}.csv" for n in ("guest", "host", "test")]
    for path in paths:
        reference_path = shared_data / path.name
        assert path.read_text().splitlines()[0] == reference_path.read_text().splitlines()[0]
        rebuilt, reference = load_csv(path), load_csv(reference_path)
        assert rebuilt.ids is not None and reference.ids is not None
        np.testing.assert_array_equal(rebuilt.ids, reference.ids)
        np.testing.assert_array_equal(rebuilt.y, reference.y)
        assert rebuilt.feature_names == reference.feature_names
        assert float(np.max(np.abs(rebuilt.X - reference.X))) < 1e-12


def test_replay_on_rebuilt_files_prints_the_published_log(
    tmp_path: Path, shared_data: Path
) -> None:
    published = [
        " ".join(m.split()) for m in LOG_LINE.findall((shared_data / "README.md").read_text())
    ]
    assert len(published) == 5
    guest, host, test = (load_csv(p) for p in write_breast_homo(tmp_path))
    printed = [
        " ".join(format_eval_line(t, m).split()) for t, m in replay_reference([guest, host], test)
    ]
    for line in published:
        assert line in printed


def test_raw_files_hold_the_same_rows_unstandardised(tmp_path: Path) -> None:
    bunch = load_breast_cancer()
    raw = [load_csv(p) for p in write_breast_homo(tmp_path / "raw", raw=True)]
    standard = breast_homo_sets()
    for r, s in zip(raw, standard, strict=True):
        assert r.ids is not None and s.ids is not None
        np.testing.assert_array_equal(r.ids, s.ids)
        np.testing.assert_array_equal(r.y, s.y)
        np.testing.assert_array_equal(r.X, bunch.data[r.ids][:, list(REFERENCE_FEATURE_ORDER)])
    assert max(float(np.abs(r.X).max()) for r in raw) == pytest.approx(4254.0)
    X = np.vstack([r.X for r in raw])
    restandardised = np.round((X - X.mean(axis=0)) / X.std(axis=0), 6)
    np.testing.assert_allclose(restandardised, np.vstack([s.X for s in standard]), atol=2e-6)
