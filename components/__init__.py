"""KFP components, one module per pipeline stage; each calls one function of kubeface.stages."""

from kubeface.components.align import align
from kubeface.components.convert import convert
from kubeface.components.embed import embed
from kubeface.components.fetch import fetch
from kubeface.components.publish import publish, report_rejected
from kubeface.components.train import train
from kubeface.components.validate import validate

__all__ = ["align", "convert", "embed", "fetch", "publish", "report_rejected", "train", "validate"]
