"""train: a linear SVM over the embeddings of every shard."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train(shards: Input[List[Dataset]], model: Output[Model], test_fraction: float = 0.25, seed: int = 0):
    """Split the photos, drop duplicates and fit the classifier.

    Args:
        shards: The embed outputs of all shards.
        model: classifier/ (arrays and JSON, no pickle), split.json and embeddings.npz.
        test_fraction: Share of each person's photos held out when there is no test folder.
        seed: Seed of the split and of the SVM's probability calibration.
    """
    from pathlib import Path

    from kubeface import stages

    result = stages.run_train([Path(s.path) for s in shards], Path(model.path), test_fraction, int(seed))
    model.metadata.update({"people": len(result["people"]), "n_train": result["n_train"],
                           "n_test": result["n_test"]})
