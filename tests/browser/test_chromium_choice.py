"""Which Chromium the browser tests drive: BOOKPAY_CHROMIUM, else Debian's headless shell, else
Debian's chromium (the headless shell runs the suite's pages on less than half the CPU)."""

from __future__ import annotations

import pytest
from conftest import chromium_path


def fake_binaries(folder, *names):
    folder.mkdir()
    for name in names:
        binary = folder / name
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    "installed, chosen",
    [
        (("chromium", "chromium-headless-shell"), "chromium-headless-shell"),
        (("chromium",), "chromium"),
        (("chromium-headless-shell",), "chromium-headless-shell"),
        ((), None),
    ],
)
def test_the_headless_shell_is_driven_when_installed(tmp_path, monkeypatch, installed, chosen):
    folder = fake_binaries(tmp_path / "bin", *installed)
    monkeypatch.delenv("BOOKPAY_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(folder))
    assert chromium_path() == (str(folder / chosen) if chosen else None)


def test_bookpay_chromium_names_the_binary_whatever_is_installed(tmp_path, monkeypatch):
    folder = fake_binaries(tmp_path / "bin", "chromium", "chromium-headless-shell")
    own = fake_binaries(tmp_path / "own", "my-chromium") / "my-chromium"
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("BOOKPAY_CHROMIUM", str(own))
    assert chromium_path() == str(own)
