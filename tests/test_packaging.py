"""The wheel: only the kubeface package at the top level, with its data, and a working CLI."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, timeout=600)
    (found,) = out.glob("kubeface-*.whl")
    return found


def test_wheel_has_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"kubeface", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}


def test_wheel_carries_pipeline_and_demo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kubeface/pipelines/kubeface-train.yaml" in names
    assert "kubeface/components/align.py" in names
    assert "kubeface/serving/__init__.py" in names
    assert "kubeface/serving/ui.html" in names
    demo = [n for n in names if n.startswith("kubeface/data/demo_lfw/dataset/") and n.endswith(".jpg")]
    assert len(demo) == 150


def test_cli_runs_from_unpacked_wheel(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    entry_points = (tmp_path / "site" / "kubeface-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "kubeface = kubeface.cli:main" in entry_points
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kubeface, kubeface.cli; "
            "print(kubeface.__file__); kubeface.cli.main(['compile', '--output', sys.argv[2]])")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site"), str(tmp_path / "p.yaml")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(str(tmp_path / "site"))
    assert (tmp_path / "p.yaml").read_text() == (ROOT / "pipelines" / "kubeface-train.yaml").read_text()
