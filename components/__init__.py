"""KFP components, one module per pipeline stage; each calls one function of kubeface.stages."""

from pathlib import Path

from kubeface.components.align import align
from kubeface.components.convert import convert
from kubeface.components.deploy import deploy
from kubeface.components.embed import embed
from kubeface.components.fetch import fetch
from kubeface.components.publish import publish, report_rejected
from kubeface.components.train import train
from kubeface.components.validate import validate

__all__ = ["align", "convert", "deploy", "embed", "fetch", "publish", "report_rejected", "train", "validate"]

COMPONENTS = {name: globals()[name] for name in __all__}
"""Every component by function name; each is compiled to COMPONENTS_DIR/<name>.yaml."""
COMPONENTS_DIR = Path(__file__).parent


def compile_components(folder: Path = COMPONENTS_DIR) -> list[Path]:
    """Compile each component to its own YAML, loadable with kfp.components.load_component_from_file."""
    from kfp import compiler

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, component in COMPONENTS.items():
        path = folder / f"{name}.yaml"
        compiler.Compiler().compile(component, str(path))
        paths.append(path)
    return paths
