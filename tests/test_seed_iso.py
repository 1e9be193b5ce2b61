"""The NoCloud seed ISO builder."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pycdlib
import pytest

from components.hosts.seed_iso import build_seed_iso
from tests.conftest import ROOT

DOCUMENTS = {
    "user-data": "#cloud-config\nhostname: node-a\n",
    "meta-data": "instance-id: node-a-1\nlocal-hostname: node-a\n",
    "network-config": "version: 2\n",
}


def read_seed_file(image: bytes, name: str) -> str:
    """A file of a seed ISO by its Rock Ridge name; checks Joliet agrees and the CIDATA label."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
        joliet = io.BytesIO()
        iso.get_file_from_iso_fp(joliet, joliet_path=f"/{name}")
        assert joliet.getvalue() == out.getvalue()
        assert iso.pvd.volume_identifier.decode().strip() == "CIDATA"
        return out.getvalue().decode()
    finally:
        iso.close()


def test_iso_carries_each_document_under_its_real_name():
    image = build_seed_iso(DOCUMENTS)
    for name, text in DOCUMENTS.items():
        assert read_seed_file(image, name) == text


def test_network_config_is_optional_but_user_and_meta_data_are_not():
    image = build_seed_iso({k: v for k, v in DOCUMENTS.items() if k != "network-config"})
    assert read_seed_file(image, "user-data") == DOCUMENTS["user-data"]
    with pytest.raises(ValueError, match="meta-data"):
        build_seed_iso({"user-data": "#cloud-config\n"})
    with pytest.raises(ValueError, match="vendor-data"):
        build_seed_iso({**DOCUMENTS, "vendor-data": "x"})


def test_command_line_writes_the_iso(tmp_path):
    target = tmp_path / "seeds" / "vm.iso"
    result = subprocess.run(
        [sys.executable, "-m", "components.hosts.seed_iso", str(target)],
        cwd=ROOT,
        input=json.dumps(DOCUMENTS),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert read_seed_file(target.read_bytes(), "meta-data") == DOCUMENTS["meta-data"]
    assert [p.name for p in target.parent.iterdir()] == ["vm.iso"]  # no temporary file left behind


def test_command_line_rejects_bad_input(tmp_path):
    target = tmp_path / "vm.iso"
    result = subprocess.run(
        [sys.executable, "-m", "components.hosts.seed_iso", str(target)],
        cwd=ROOT,
        input='["not", "a", "mapping"]',
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "expected a JSON object" in result.stderr
    assert not target.exists()
