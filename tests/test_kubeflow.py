"""The compiled pipeline and component YAMLs: freshness, round trips through the KFP SDK, structure.

These read the YAML the KFP compiler writes; the run on a cluster itself cannot be tested here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp import compiler, components
from kubeface.components import COMPONENTS, COMPONENTS_DIR, compile_components
from kubeface.pipelines.training import COMPILED_YAML, S3_SECRET, S3_SECRET_KEYS, compile_pipeline

from kubeface.imagerefs import COMPONENT_IMAGE, DEFAULT_REGISTRY, PREDICTOR_IMAGE

REPO = Path(__file__).resolve().parents[1]
STAGES = ["convert", "fetch", "align", "embed", "train", "validate", "publish", "deploy", "report-rejected"]


def load_documents(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as stream:
        return list(yaml.safe_load_all(stream))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """A fresh compile of the pipeline, made in this test session."""
    return compile_pipeline(tmp_path_factory.mktemp("compiled") / COMPILED_YAML.name)


@pytest.fixture(scope="module")
def spec(compiled) -> dict:
    return load_documents(compiled)[0]


@pytest.fixture(scope="module")
def platform(compiled) -> dict:
    return load_documents(compiled)[1]["platforms"]["kubernetes"]


def task_paths(spec: dict) -> dict[str, list[dict]]:
    """Map each container task to the chain of DAG tasks (conditions, loops) that encloses it."""
    found: dict[str, list[dict]] = {}

    def walk(dag: dict, chain: list[dict]) -> None:
        for name, task in dag["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            entry = {"name": name, "label": task["taskInfo"]["name"], "task": task}
            if "dag" in component:
                walk(component["dag"], chain + [entry])
            else:
                found[name] = chain + [entry]

    walk(spec["root"]["dag"], [])
    return found


def test_pipeline_yaml_is_fresh(compiled):
    checked_in = REPO / "pipelines" / COMPILED_YAML.name
    assert checked_in.read_text(encoding="utf-8") == compiled.read_text(encoding="utf-8"), (
        "pipelines/kubeface-train.yaml is stale: run `kubeface compile` and commit the result"
    )


def test_component_yamls_are_fresh(tmp_path):
    fresh = compile_components(tmp_path)
    assert sorted(p.name for p in fresh) == sorted(f"{name}.yaml" for name in COMPONENTS)
    for path in fresh:
        checked_in = COMPONENTS_DIR / path.name
        assert checked_in.is_file(), f"components/{path.name} is missing: run `kubeface compile`"
        assert checked_in.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"components/{path.name} is stale: run `kubeface compile` and commit the result"
        )
    stray = sorted({p.name for p in COMPONENTS_DIR.glob("*.yaml")} - {p.name for p in fresh})
    assert stray == [], f"YAML files without a component: {stray}"


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_yaml_round_trip(name, tmp_path):
    path = COMPONENTS_DIR / f"{name}.yaml"
    loaded = components.load_component_from_file(str(path))
    original = COMPONENTS[name]
    assert loaded.name == original.name
    assert loaded.component_spec.inputs == original.component_spec.inputs
    assert loaded.component_spec.outputs == original.component_spec.outputs
    recompiled = tmp_path / path.name
    compiler.Compiler().compile(loaded, str(recompiled))
    assert load_documents(recompiled) == load_documents(path)


def test_pipeline_yaml_round_trip(tmp_path, compiled):
    loaded = components.load_component_from_file(str(compiled))
    assert loaded.name == "kubeface-train"
    recompiled = tmp_path / "again.yaml"
    compiler.Compiler().compile(loaded, str(recompiled))
    assert load_documents(recompiled) == load_documents(compiled)


def test_every_task_uses_component_image(spec):
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == len(STAGES)
    for name, executor in executors.items():
        assert executor["container"]["image"] == COMPONENT_IMAGE, name


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_source_runs_alone(name):
    """The function source a pod executes defines the component without names from its module."""
    executors = load_documents(COMPONENTS_DIR / f"{name}.yaml")[0]["deploymentSpec"]["executors"]
    executor = executors[f"exec-{name.replace('_', '-')}"]
    source = executor["container"]["command"][3]
    namespace: dict = {}
    exec(compile(source, f"{name}.yaml", "exec"), namespace)  # noqa: S102 (the test runs what a pod runs)
    assert callable(namespace[name])


def test_components_skip_kfp_install(spec):
    for name, executor in spec["deploymentSpec"]["executors"].items():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command, f"{name} installs packages at run time: {command[:200]}"


def test_every_stage_is_present(spec):
    assert sorted(task_paths(spec)) == sorted(STAGES)


def test_publish_and_deploy_only_when_passed(spec):
    paths = task_paths(spec)
    for stage in ("publish", "deploy"):
        conditions = [step["task"]["triggerPolicy"]["condition"] for step in paths[stage]
                      if "triggerPolicy" in step["task"]]
        assert "inputs.parameter_values['pipelinechannel--validate-Output'] == true" in conditions, stage
        assert [step["label"] for step in paths[stage]][:2] == ["condition-branches-2", "passed"]
    rejected = [step["task"].get("triggerPolicy", {}).get("condition") for step in paths["report-rejected"]]
    assert "!(inputs.parameter_values['pipelinechannel--validate-Output'] == true)" in rejected


def test_deploy_needs_the_flag_and_publish(spec):
    chain = task_paths(spec)["deploy"]
    gate = chain[-2]
    assert gate["label"] == "deploy"
    assert gate["task"]["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--deploy'] == true"
    assert gate["task"]["dependentTasks"] == ["publish"]
    model_uri = chain[-1]["task"]["inputs"]["parameters"]["model_uri"]
    assert model_uri == {"componentInputParameter": "pipelinechannel--publish-Output"}


def test_other_stages_run_unconditionally(spec):
    paths = task_paths(spec)
    for stage in ("convert", "fetch", "train", "validate"):
        assert len(paths[stage]) == 1, stage
    for stage in ("align", "embed"):
        assert [step["label"] for step in paths[stage]] == ["shard", stage]


def test_fetch_is_not_cached(spec):
    paths = task_paths(spec)
    assert paths["fetch"][-1]["task"]["cachingOptions"] == {}
    for stage in ("convert", "align", "embed", "train", "validate", "publish"):
        assert paths[stage][-1]["task"]["cachingOptions"] == {"enableCache": True}, stage


def test_shards_feed_parallel_align(spec):
    loop = task_paths(spec)["align"][0]["task"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--fetch-Output"}
    train_input = spec["root"]["dag"]["tasks"]["train"]["inputs"]["artifacts"]["shards"]
    assert train_input == {"taskOutputArtifact": {"outputArtifactKey": "pipelinechannel--embed-embeddings",
                                                  "producerTask": "for-loop-1"}}


def test_s3_secret_only_on_store_tasks(platform):
    executors = platform["deploymentSpec"]["executors"]
    assert sorted(executors) == ["exec-align", "exec-embed", "exec-fetch", "exec-publish", "exec-validate"]
    for name, config in executors.items():
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == S3_SECRET, name
        assert secret["optional"] is False
        mapping = {item["secretKey"]: item["envVar"] for item in secret["keyToEnv"]}
        assert mapping == {key: key for key in S3_SECRET_KEYS}


def test_no_secret_value_compiled(tmp_path):
    marker = "kubeface-test-secret-3f9c1d"
    environment = dict(os.environ, AWS_ACCESS_KEY_ID=marker + "-id", AWS_SECRET_ACCESS_KEY=marker,
                       KUBEFACE_REGISTRY="")
    output = tmp_path / "pipeline.yaml"
    subprocess.run([sys.executable, "-m", "kubeface.cli", "compile", "--output", str(output)],
                   check=True, env=environment, capture_output=True)
    text = output.read_text(encoding="utf-8")
    assert marker not in text
    assert "secretName: kubeface-s3" in text


def test_parameters_and_defaults(spec):
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    expected = {
        "dataset_uri": ("STRING", None), "test_dataset_uri": ("STRING", ""), "store_uri": ("STRING", ""),
        "s3_endpoint": ("STRING", ""), "model_name": ("STRING", "facenet-classifier"),
        "min_accuracy": ("NUMBER_DOUBLE", 0.9), "margin": ("NUMBER_INTEGER", 24),
        "image_size": ("NUMBER_INTEGER", 160), "precision": ("STRING", "FP32"),
        "shards": ("NUMBER_INTEGER", 1), "deploy": ("BOOLEAN", False), "serving_namespace": ("STRING", ""),
        "isvc_name": ("STRING", "kubeface"), "canary_traffic_percent": ("NUMBER_INTEGER", 100),
        "serving_service_account": ("STRING", ""), "unknown_dataset_uri": ("STRING", ""),
        "target_far": ("NUMBER_DOUBLE", 0.01), "require_not_worse": ("BOOLEAN", False),
        "embedding_cache": ("BOOLEAN", True),
    }
    for name, (kind, default) in expected.items():
        assert parameters[name]["parameterType"] == kind, name
        assert parameters[name].get("defaultValue") == default, name


def test_readme_documents_every_parameter(spec):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Run on Kubeflow", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {row.split("`")[1] for row in rows}
    assert documented == set(spec["root"]["inputDefinitions"]["parameters"])


def test_registry_override_reaches_every_image(tmp_path):
    output = tmp_path / "pipeline.yaml"
    environment = dict(os.environ, KUBEFACE_REGISTRY="registry.example.test/faces/")
    subprocess.run([sys.executable, "-m", "kubeface.cli", "compile", "--output", str(output)],
                   check=True, env=environment, capture_output=True)
    spec = load_documents(output)[0]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {COMPONENT_IMAGE.replace(DEFAULT_REGISTRY, "registry.example.test/faces")}
    deploy_task = task_paths(spec)["deploy"][-1]["task"]
    predictor_image = deploy_task["inputs"]["parameters"]["predictor_image"]["runtimeValue"]["constant"]
    assert predictor_image == PREDICTOR_IMAGE.replace(DEFAULT_REGISTRY, "registry.example.test/faces")


def test_compile_command_writes_all(tmp_path):
    pipeline = tmp_path / "p.yaml"
    folder = tmp_path / "components"
    result = subprocess.run([sys.executable, "-m", "kubeface.cli", "compile", "--output", str(pipeline),
                             "--components-dir", str(folder)],
                            check=True, capture_output=True, text=True, env=dict(os.environ, KUBEFACE_REGISTRY=""))
    assert result.stdout.splitlines()[0] == str(pipeline)
    assert sorted(p.name for p in folder.glob("*.yaml")) == sorted(f"{n}.yaml" for n in COMPONENTS)
    assert pipeline.read_text(encoding="utf-8") == (REPO / "pipelines" / COMPILED_YAML.name).read_text(
        encoding="utf-8")
