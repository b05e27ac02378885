"""Package-wide rules: python-paillier (GPL) and pickle stay out of homolr."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "homolr"
FORBIDDEN_IMPORT = re.compile(
    r"^\s*(import|from)\s+(phe|pickle|cPickle|dill|marshal|shelve)\b", re.M
)


def _offenders() -> list[str]:
    return sorted(
        str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if FORBIDDEN_IMPORT.search(p.read_text())
    )


def test_no_module_imports_phe_or_pickle() -> None:
    assert _offenders() == []


def test_importing_every_module_does_not_load_phe() -> None:
    code = (
        "import importlib, pkgutil, sys, homolr\n"
        "for m in pkgutil.walk_packages(homolr.__path__, 'homolr.'):\n"
        "    if m.name != 'homolr.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "print('phe' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
