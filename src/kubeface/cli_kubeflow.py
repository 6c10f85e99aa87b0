"""`kubeface submit`: compile the training pipeline and start a run on a Kubeflow Pipelines server."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

from kubeface.errors import ConfigurationError, InvalidInputError, KubefaceError

logger = logging.getLogger(__name__)

TOKEN_ENV = "KUBEFACE_KFP_TOKEN"
DEFAULT_EXPERIMENT = "kubeface"
# Spellings --param accepts for a BOOLEAN pipeline parameter.
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def add_submit(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit", help="compile the training pipeline and start a run on a Kubeflow Pipelines server",
        description="Compile the training pipeline and start a run with the KFP SDK client. A bearer "
        f"token for the KFP API, when the server needs one, is read from ${TOKEN_ENV}.")
    parser.add_argument("--host", required=True, help="KFP API URL, for example http://127.0.0.1:8888 "
                        "through `kubectl port-forward svc/ml-pipeline-ui 8888:80 -n kubeflow`")
    parser.add_argument("--namespace", default=None, help="Kubeflow profile namespace of the experiment "
                        "(multi-user installs; default: the server's default)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="experiment to run in; created "
                        "when missing (default: %(default)s)")
    parser.add_argument("--run-name", default=None, help="name of the run (default: the pipeline name and time)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="pipeline parameter, repeatable; for example --param dataset_uri=s3://faces/"
                        "datasets/staff/1.0.0 --param shards=4 --param deploy=true")
    parser.add_argument("--pipeline-root", default=None, help="root of the run's artifacts, for example "
                        "s3://bucket/runs (default: the server's)")
    parser.add_argument("--service-account", default=None, help="Kubernetes service account the run's pods "
                        "use (default: the server's)")
    parser.set_defaults(handler=cmd_submit)


def pipeline_parameters(spec: dict) -> dict[str, dict]:
    """Return the pipeline's input parameters: name to {parameterType, defaultValue?, isOptional?}."""
    return spec["root"].get("inputDefinitions", {}).get("parameters", {})


def convert_value(name: str, raw: str, kind: str):
    """Convert a command-line string to the pipeline parameter's type."""
    if kind == "STRING":
        return raw
    try:
        if kind == "NUMBER_INTEGER":
            return int(raw)
        if kind == "NUMBER_DOUBLE":
            return float(raw)
    except ValueError as error:
        expected = "an integer" if kind == "NUMBER_INTEGER" else "a number"
        raise InvalidInputError(f"parameter {name} must be {expected}; got {raw!r}") from error
    if kind == "BOOLEAN":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise InvalidInputError(f"parameter {name} must be true or false; got {raw!r}")
    raise InvalidInputError(f"parameter {name} has type {kind}, which --param cannot set")


def parse_params(items: list[str], spec: dict) -> dict:
    """Turn KEY=VALUE strings into typed pipeline arguments, checked against the compiled spec."""
    declared = pipeline_parameters(spec)
    arguments = {}
    for item in items:
        key, separator, raw = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise InvalidInputError(f"--param expects KEY=VALUE; got {item!r}")
        if key not in declared:
            raise InvalidInputError(f"unknown pipeline parameter {key!r}; known: {', '.join(sorted(declared))}")
        arguments[key] = convert_value(key, raw, declared[key]["parameterType"])
        _check_range(key, arguments[key])
    missing = [name for name, info in declared.items()
               if name not in arguments and not info.get("isOptional") and "defaultValue" not in info]
    if missing:
        raise InvalidInputError(f"missing required pipeline parameter(s): {', '.join(sorted(missing))}; "
                                f"add --param {missing[0]}=VALUE")
    return arguments


# Allowed values of numeric pipeline parameters: (low, high, whether high is allowed). A wrong
# value fails at submission instead of in a pod minutes later.
PARAMETER_RANGES = {
    "min_accuracy": (0.0, 1.0, True),
    "target_far": (0.0, 1.0, False),
    "shards": (1, None, True),
    "margin": (0, None, True),
    "image_size": (32, 1024, True),
}


def _check_range(key: str, value) -> None:
    if key not in PARAMETER_RANGES:
        return
    low, high, high_included = PARAMETER_RANGES[key]
    above = high is not None and (value > high if high_included else value >= high)
    if value < low or above:
        upper = "" if high is None else f", {high}{']' if high_included else ')'}"
        bounds = f"[{low}{upper}" if high is not None else f">= {low}"
        raise InvalidInputError(f"pipeline parameter {key}={value} is out of range: expected {bounds}")


def run_url(host: str, run_id: str) -> str:
    """Return the run's page in the Kubeflow Pipelines UI, as the KFP SDK client builds it."""
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def make_client(host: str, namespace: str | None):
    """Create a kfp.Client for host, with the bearer token from $KUBEFACE_KFP_TOKEN when set."""
    import kfp

    if not host.startswith(("http://", "https://")):
        raise InvalidInputError(f"--host must be an http:// or https:// URL; got {host!r}")
    token = os.environ.get(TOKEN_ENV) or None
    with warnings.catch_warnings():
        # The client warns on every construction that it needs a KFP 2 server; kubeface needs one too.
        warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")
        return kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token)


def read_pipeline_spec(package: Path) -> dict:
    """Return the pipeline spec, the first YAML document of a compiled package.

    A second document, the platform spec, contains the Kubernetes settings such as the secret.
    """
    import yaml

    with open(package, encoding="utf-8") as stream:
        return next(yaml.safe_load_all(stream))


def submit(host: str, package: Path, arguments: dict, experiment: str = DEFAULT_EXPERIMENT,
           namespace: str | None = None, run_name: str | None = None, pipeline_root: str | None = None,
           service_account: str | None = None) -> tuple[str, str]:
    """Submit a run of a compiled pipeline package and return (run id, run URL)."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    # The client prints experiment and run links of its own. They go to the debug log, so that
    # stdout has only the two lines kubeface prints.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            client = make_client(host, namespace)
            result = client.create_run_from_pipeline_package(
                str(package), arguments=arguments, run_name=run_name, experiment_name=experiment,
                namespace=namespace, pipeline_root=pipeline_root, service_account=service_account)
    except ApiException as error:
        hint = f" (set ${TOKEN_ENV} to a bearer token)" if error.status in (401, 403) else ""
        raise KubefaceError(f"KFP API at {host} rejected the request: HTTP {error.status} "
                            f"{error.reason}{hint}") from error
    except HTTPError as error:
        raise ConfigurationError(f"failed to reach the KFP API at {host}: {error}; check --host") from error
    logger.debug("KFP client output: %s", printed.getvalue().strip())
    logger.info("submitted run %s to %s", result.run_id, host)
    return result.run_id, run_url(host, result.run_id)


def cmd_submit(args) -> int:
    from kubeface.pipelines.training import COMPILED_YAML, compile_pipeline

    with tempfile.TemporaryDirectory(prefix="kubeface-submit-") as folder:
        package = compile_pipeline(Path(folder) / COMPILED_YAML.name)
        arguments = parse_params(args.param, read_pipeline_spec(package))
        run_id, url = submit(args.host, package, arguments, args.experiment, args.namespace, args.run_name,
                             args.pipeline_root, args.service_account)
    print(f"run id: {run_id}")
    print(f"run url: {url}")
    return 0
