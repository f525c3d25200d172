"""`course hub render`: the Zero to JupyterHub values, and the rendered files as a whole (fresh,
`--check`). The grading cluster and its network policies: test_render_cluster.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from autograder.cli import main
from autograder.course.config import load_course
from autograder.hosting import k8s, render

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "hub"


@pytest.fixture(scope="module")
def course():
    return load_course(ROOT)


@pytest.fixture(scope="module")
def rendered(course, tmp_path_factory) -> dict[str, Any]:
    """File name -> its one document (values.yaml) or its list of documents."""
    out = tmp_path_factory.mktemp("hub")
    render.write_all(course, out)
    docs = {p.name: list(yaml.safe_load_all(p.read_text())) for p in out.glob("*.yaml")}
    return {name: d[0] if len(d) == 1 else d for name, d in docs.items()}


def _merged(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values over the chart defaults (maps merge, the rest replaces)."""
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def test_values_pass_the_chart_schema(rendered):
    """Would `helm install` accept values.yaml (validated the way helm does: merged over defaults)?"""
    schema = yaml.safe_load((HUB / "z2jh-values.schema.yaml").read_text())
    defaults = yaml.safe_load((HUB / "z2jh-values.default.yaml").read_text())
    jsonschema.validate(_merged(defaults, rendered["values.yaml"]), schema)


def test_schema_catches_a_typo(rendered):
    """Is the schema check real, i.e. does a misspelt key fail it?"""
    schema = yaml.safe_load((HUB / "z2jh-values.schema.yaml").read_text())
    defaults = yaml.safe_load((HUB / "z2jh-values.default.yaml").read_text())
    bad = copy.deepcopy(rendered["values.yaml"])
    bad["singleuser"]["profilelist"] = bad["singleuser"].pop("profileList")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_merged(defaults, bad), schema)


def test_profiles_carry_the_configured_limits(rendered, course):
    h = course.config.hub
    profiles = {p["slug"]: p["kubespawner_override"] for p in rendered["values.yaml"]["singleuser"]["profileList"]}
    assert profiles["gpu"]["extra_resource_limits"] == {"nvidia.com/gpu": str(h.gpu_limit)}
    assert profiles["gpu"]["cpu_limit"] == h.cpu_limit
    assert profiles["gpu"]["mem_limit"] == f"{int(h.mem_limit_gb * 1024)}M"
    assert profiles["cpu"]["cpu_limit"] == h.cpu_profile_cpu_limit
    assert profiles["cpu"]["mem_limit"] == f"{int(h.cpu_profile_mem_limit_gb * 1024)}M"
    assert "extra_resource_limits" not in profiles["cpu"]


def test_culler_data_weights_and_exchange(rendered, course):
    values = rendered["values.yaml"]
    assert values["cull"]["enabled"] is True
    assert values["cull"]["timeout"] == course.config.hub.cull_idle_s
    storage = values["singleuser"]["storage"]
    mounts = {m["mountPath"]: m for m in storage["extraVolumeMounts"]}
    assert mounts[course.config.weights.cache_dir]["readOnly"] is True
    assert mounts[k8s.DATA_MOUNT]["readOnly"] is True
    assert course.config.hub.exchange_dir in mounts
    volumes = {v["name"]: v for v in storage["extraVolumes"]}
    assert volumes[k8s.DATA_CLAIM]["persistentVolumeClaim"]["readOnly"] is True


def test_render_writes_the_values_the_cluster_and_its_policies(rendered):
    """Is every file of the production config written, and the per-submission Job gone?"""
    assert set(rendered) == {"values.yaml", "grading-cluster.yaml", "networkpolicy.yaml"}
    assert not (HUB / "grading-job.yaml").exists()


def test_committed_hub_files_are_fresh(course):
    """Is hub/ what `course hub render` writes today? (Refresh: `course hub render`.)"""
    assert render.stale_files(course, HUB) == []


def test_render_check_flags_stale_files(course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_ROOT", str(ROOT))
    assert main(["hub", "render", "--out", str(tmp_path)]) == 0
    assert main(["hub", "render", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "values.yaml").write_text("# edited by hand\n")
    assert main(["hub", "render", "--out", str(tmp_path), "--check"]) == 2
    assert "values.yaml" in capsys.readouterr().err
