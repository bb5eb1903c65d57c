"""pip.conf and uv.toml beside the index: the index URL, and wheels only where nothing builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypidl.store.client_config import client_config, write_client_config
from tests.lib.mirror import add_to_mirror
from tests.lib.wheels import make_sdist, make_wheel


def test_wheels_only_for_every_project_no_target_builds(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    add_to_mirror(root, make_wheel(tmp_path / "d", "alpha", "1.0"))
    config = client_config(root)
    assert config.everything
    assert "only-binary = :all:" in config.pip_conf()
    add_to_mirror(root, make_sdist(tmp_path / "d", "beta", "1.0"))
    pip_conf, uv_toml = write_client_config(root)
    pip_text = pip_conf.read_text(encoding="utf-8")
    assert f"index-url = {(root / 'simple').resolve().as_uri()}/" in pip_text
    assert "only-binary = alpha\n" in pip_text
    assert "prefer-binary = true" in pip_text
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    uv = tomllib.loads(uv_toml.read_text(encoding="utf-8"))
    assert uv["index"] == [
        {
            "name": "pypidl-mirror",
            "url": (root / "simple").resolve().as_uri() + "/",
            "default": True,
        }
    ]
    assert uv["pip"] == {"no-build-package": ["alpha"]}
