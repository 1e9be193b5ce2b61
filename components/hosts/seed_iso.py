"""Build a cloud-init NoCloud seed ISO (volume label CIDATA) in pure Python.

Run by the VM's seed step on the workstation:

    python -m components.hosts.seed_iso OUTPUT.iso < documents.json

where documents.json maps "user-data", "meta-data" and "network-config" to their text.
No host tool (genisoimage, hdiutil) is needed.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pycdlib

SEED_FILES = ("user-data", "meta-data", "network-config")


def build_seed_iso(documents: Mapping[str, str]) -> bytes:
    missing = [name for name in ("user-data", "meta-data") if name not in documents]
    if missing:
        raise ValueError(f"seed documents lack {', '.join(missing)}")
    unknown = sorted(set(documents) - set(SEED_FILES))
    if unknown:
        raise ValueError(f"unexpected seed documents: {', '.join(unknown)}")
    iso = pycdlib.PyCdlib()
    # Rock Ridge and Joliet carry the real lower-case names; cloud-init finds the disk by label.
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="CIDATA")
    for index, name in enumerate(SEED_FILES):
        if name not in documents:
            continue
        data = documents[name].encode()
        iso.add_fp(
            io.BytesIO(data),
            len(data),
            f"/SEED{index}.;1",
            rr_name=name,
            joliet_path=f"/{name}",
        )
    output = io.BytesIO()
    iso.write_fp(output)
    iso.close()
    return output.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    Path(temporary).replace(path)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m components.hosts.seed_iso OUTPUT.iso < documents.json", file=sys.stderr)
        return 2
    try:
        documents = json.load(sys.stdin)
        if not isinstance(documents, dict):
            raise ValueError("expected a JSON object of seed documents")
        write_atomically(Path(argv[1]), build_seed_iso(documents))
    except (ValueError, OSError) as error:
        print(f"seed ISO {argv[1]}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
