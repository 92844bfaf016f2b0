"""The suite must exercise the installed wheel, never the source tree."""

from __future__ import annotations

from pathlib import Path

import keycel
import keycel._keycel as native


def test_keycel_is_imported_from_site_packages() -> None:
    path = Path(keycel.__file__).resolve()
    assert "site-packages" in path.parts, path
    source = Path(__file__).resolve().parent.parent / "python"
    assert source not in path.parents, f"{path} is the source tree, not the installed wheel"


def test_native_module_is_abi3_extension() -> None:
    path = Path(native.__file__)
    assert path.name.startswith("_keycel") and path.suffix == ".so", path
    assert ".abi3." in path.name, path


def test_wheel_ships_typing_information() -> None:
    pkg = Path(keycel.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_keycel.pyi").exists()


def test_public_names() -> None:
    for name in keycel.__all__:
        assert hasattr(keycel, name), name
    assert keycel.__version__
