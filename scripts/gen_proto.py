"""Regenerate the committed gRPC/protobuf stubs from proto/homolr/v2/homolr.proto.

Run with ``make proto`` (needs the ``proto`` extra: grpcio-tools). The stubs land in
``src/homolr/protocol/`` as ``homolr_pb2.py``, ``homolr_pb2.pyi`` and ``homolr_pb2_grpc.py``; the
import inside the grpc stub is rewritten to a package-relative one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT = ROOT / "src" / "homolr" / "protocol"


def main() -> int:
    proto = PROTO_DIR / "homolr" / "v2" / "homolr.proto"
    tmp = OUT / "_gen"
    tmp.mkdir(exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(proto),
        ]
    )
    if rc != 0:
        return int(rc)
    gen = tmp / "homolr" / "v2"
    for name in ("homolr_pb2.py", "homolr_pb2.pyi", "homolr_pb2_grpc.py"):
        text = (gen / name).read_text()
        text = re.sub(
            r"^from homolr\.v2 import homolr_pb2", "from . import homolr_pb2", text, flags=re.M
        )
        (OUT / name).write_text(text)
    for path in sorted(tmp.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
