"""The settings of several instances: a new leader's grace outlasts any directory call."""

from __future__ import annotations

from pathlib import Path

import pytest

from floatseat.service.settings import SettingsError, load_settings


def test_the_takeover_grace_must_outlast_a_directory_call(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ha_takeover_grace_s must be longer than"):
        load_settings(None, state_dir=tmp_path, directory_timeout_s=30, ha_takeover_grace_s=30)
    settings = load_settings(
        None, state_dir=tmp_path, directory_timeout_s=10, ha_takeover_grace_s=10.5
    )
    assert settings.takeover_grace_s == 10.5
    assert load_settings(None, state_dir=tmp_path, directory_timeout_s=10).takeover_grace_s == 15
