"""The container images, checked without a Docker daemon (none runs here): what the Dockerfiles
copy and install, who they run as, and where the image names come from."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from kubeface.imagerefs import COMPONENT_IMAGE, DEFAULT_REGISTRY, PREDICTOR_IMAGE

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11 or later")

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "images"
DOCKERFILES = {"component": IMAGES / "component.Dockerfile", "predictor": IMAGES / "predictor.Dockerfile"}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def instructions(path: Path) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, with continued lines joined and comments dropped."""
    result, pending = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def project_requirements() -> dict[str, Requirement]:
    requirements = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in ("serve",):
        requirements += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    return {canonicalize_name(r.name): r for r in requirements}


def pinned_installs(steps: list[tuple[str, str]]) -> dict[str, str]:
    """Return name -> version of every NAME==VERSION that a RUN pip install line names."""
    pins = {}
    for keyword, arguments in steps:
        if keyword != "RUN" or "pip install" not in arguments:
            continue
        for token in shlex.split(arguments.replace("&&", " ")):
            match = PIN.match(token)
            if match:
                pins[canonicalize_name(match[1])] = match[2]
    return pins


def constraints() -> dict[str, str]:
    pins = {}
    for line in (IMAGES / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = PIN.match(line)
            assert match, f"constraints.txt line is not NAME==VERSION: {line!r}"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_copy_sources_exist(image):
    ignored = dockerignore_patterns()
    copies = [arguments for keyword, arguments in instructions(DOCKERFILES[image]) if keyword == "COPY"]
    assert copies
    for arguments in copies:
        parts = shlex.split(arguments)
        if any(part.startswith("--from=") for part in parts):
            continue
        sources = [part for part in parts if not part.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"{image}: COPY source {source} does not exist"
            top = source.split("/", 1)[0]
            assert top not in ignored, f"{image}: COPY source {source} is excluded by .dockerignore"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_installs_match_pyproject(image):
    requirements = project_requirements()
    pins = pinned_installs(instructions(DOCKERFILES[image]))
    for name, version in pins.items():
        if name == "setuptools":
            build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
            assert all(version in r.specifier for r in build if canonicalize_name(r.name) == name)
            continue
        assert name in requirements, f"{image} installs {name}=={version}, which pyproject.toml does not list"
        assert version in requirements[name].specifier, (
            f"{image} installs {name}=={version}; pyproject.toml requires {requirements[name]}"
        )
        if str(requirements[name].specifier).startswith("=="):
            assert f"=={version}" == str(requirements[name].specifier)


def test_constraints_pin_every_range():
    requirements = project_requirements()
    pins = constraints()
    for name, version in pins.items():
        assert name in requirements, f"constraints.txt pins {name}, which pyproject.toml does not list"
        assert version in requirements[name].specifier, f"{name}=={version} is outside {requirements[name]}"
    ranged = {name for name, r in requirements.items() if not str(r.specifier).startswith("==")}
    assert ranged <= set(pins), f"no exact version in images/constraints.txt for {sorted(ranged - set(pins))}"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_install_uses_constraints(image):
    runs = [arguments for keyword, arguments in final_stage(DOCKERFILES[image]) if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs
    assert all("--constraint /tmp/constraints.txt" in run for run in installs if "--no-deps" not in run)


def test_component_image_contents():
    steps = final_stage(DOCKERFILES["component"])
    install = " ".join(arguments for keyword, arguments in steps if keyword == "RUN" and "pip install" in arguments)
    assert '[serve]"' in install, "the deploy step needs the kserve client from the serve extra"
    runs = [arguments for keyword, arguments in steps if keyword == "RUN"]
    assert any("ensure_converted('FP32')" in run and "ensure_converted('FP16')" in run for run in runs)
    environment = " ".join(arguments for keyword, arguments in steps if keyword == "ENV")
    assert "KUBEFACE_CACHE=/opt/kubeface/cache" in environment
    for folder in ("/gcs", "/minio", "/s3"):
        assert any("chown -R 1000:0" in run and folder in run for run in runs), folder


def test_predictor_installs_serving_only():
    text = DOCKERFILES["predictor"].read_text(encoding="utf-8").lower()
    pins = pinned_installs(final_stage(DOCKERFILES["predictor"]))
    assert set(pins) == {"openvino", "opencv-python-headless", "scikit-learn", "numpy", "pillow", "minio",
                         "kserve"}
    assert "tensorflow" not in pins
    steps = final_stage(DOCKERFILES["predictor"])
    runs = " ".join(arguments for keyword, arguments in steps if keyword == "RUN")
    assert "pip install --no-deps /tmp/wheels/kubeface-" in runs
    assert "[serve]" not in text
    assert "[test]" not in text


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_runs_as_non_root(image):
    users = [arguments for keyword, arguments in final_stage(DOCKERFILES[image]) if keyword == "USER"]
    assert users, f"{image} sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_base_image_pinned(image):
    steps = instructions(DOCKERFILES[image])
    (argument,) = [arguments for keyword, arguments in steps if keyword == "ARG" and arguments.startswith("PYTHON_IMAGE=")]
    reference = argument.split("=", 1)[1]
    match = re.fullmatch(r"python:(3)\.(\d+)\.(\d+)-slim-bookworm", reference)
    assert match, f"{image}: base image {reference} is not pinned to a patch release"
    assert f"{match[1]}.{match[2]}.0" in SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert all(arguments == "${PYTHON_IMAGE}" or arguments.startswith("${PYTHON_IMAGE} AS ")
               for keyword, arguments in steps if keyword == "FROM")


def test_predictor_entrypoint():
    steps = final_stage(DOCKERFILES["predictor"])
    entrypoints = [arguments for keyword, arguments in steps if keyword == "ENTRYPOINT"]
    commands = [arguments for keyword, arguments in steps if keyword == "CMD"]
    assert entrypoints == ['["kubeface", "serve"]']
    assert commands == ['["--model", "/mnt/models", "--host", "0.0.0.0", "--http-port", "8080", "--grpc-port", "8081"]']


def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    roots = {"components": REPO / "components", "pipelines": REPO / "pipelines", "serving": REPO / "serving"}
    base = REPO / "src" / "kubeface"
    if parts and parts[0] in roots:
        base, parts = roots[parts[0]], parts[1:]
    path = base.joinpath(*parts)
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _module_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _distribution_closure(names: set[str]) -> set[str]:
    """Return the distributions in names plus everything they require, from installed metadata."""
    found, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def test_predictor_imports_are_installed():
    """The modules `kubeface serve` loads import only what the predictor image installs."""
    starts = ["kubeface.cli", "kubeface.recognizer", "kubeface.serving"]
    starts += [f"kubeface.serving.{p.stem}" for p in (REPO / "serving").glob("*.py") if p.stem != "__init__"]
    seen, third_party, todo = set(), set(), list(starts)
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        for name in _module_level_imports(path):
            if name.split(".")[0] == "kubeface":
                todo.append(name)
            elif name.split(".")[0] not in sys.stdlib_module_names:
                third_party.add(name.split(".")[0])
    installed = _distribution_closure(set(pinned_installs(final_stage(DOCKERFILES["predictor"]))))
    assert "tensorflow" not in installed
    assert "kfp" not in installed
    providers = importlib.metadata.packages_distributions()
    for module in sorted(third_party):
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        assert distributions & installed, f"the predictor imports {module}, which its image does not install"


def test_makefile_tags_from_imagerefs():
    result = subprocess.run(["make", "--dry-run", "--always-make", "images", f"BIN={Path(sys.executable).parent}",
                             "KUBEFACE_REGISTRY="], cwd=REPO, capture_output=True, text=True, check=True)
    builds = " ".join(result.stdout.replace("\\\n", " ").split()).split("docker build")[1:]
    assert len(builds) == 2
    assert "--file images/component.Dockerfile" in builds[0]
    assert f"--tag {COMPONENT_IMAGE} ." in builds[0]
    assert "--file images/predictor.Dockerfile" in builds[1]
    assert f"--tag {PREDICTOR_IMAGE} ." in builds[1]


def test_image_names_come_from_imagerefs():
    """Outside imagerefs.py the registry is never spelled out, except in generated or manifest YAML,
    where every image reference must equal the one imagerefs builds."""
    reference = re.compile(re.escape(DEFAULT_REGISTRY) + r"/[a-z0-9-]+:[A-Za-z0-9._-]+")
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        path = REPO / name
        if name == "src/kubeface/imagerefs.py" or not path.is_file() or "/data/" in name:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if path.suffix in (".yaml", ".yml"):
            for image in reference.findall(text):
                assert image in (COMPONENT_IMAGE, PREDICTOR_IMAGE), f"{name} names image {image}"
        elif name != "tests/test_images.py":
            assert DEFAULT_REGISTRY not in text, f"{name} spells out the registry; use kubeface.imagerefs"
