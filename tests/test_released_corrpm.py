"""Our CorrPM with a converted released checkpoint computes the released CorrPM forward.

``tests/data/released/corrpm/lip_reference.npz`` holds a fixed input (2×3×96×96) and the four outputs
(seg1, seg2, edge, pose) of the released network (``ziwei-zh/CorrPM`` ``networks/model.py``, run unchanged
in eval mode, on CPU with an exact eval-mode stand-in for its CUDA-only InPlace-ABN) loaded — as its
``evaluate.py`` loads ``LIP_best.pth``, ``module.`` prefixes included — with the seeded state dict of
``tests/helpers/released.py`` under the released key names (``lip_keys.json``). Here the same state dict
is regenerated, written to a file, loaded into our net through the released-format key map, and the four
outputs are compared within 1e-4 × max|output|.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch

from helpers.released import reference, released_keys, seeded_state_dict
from humanparse.models.corrpm import CorrPM, count_parameters
from humanparse.models.corrpm.released import FORMAT, is_abn_weight
from humanparse.models.released import ReleasedWeightsError, get_format, load_released_weights, read_released

SEED = 15  # the seed the committed reference outputs were computed with
TOL = 1e-4


@pytest.fixture(scope="module")
def released_file(tmp_path_factory):
    """The seeded LIP_best.pth stand-in, saved as the released training wrapper saves it (``module.``)."""
    state = seeded_state_dict(released_keys("corrpm", "lip"), seed=SEED)
    path = tmp_path_factory.mktemp("released") / "LIP_best.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)
    return path


@pytest.fixture(scope="module")
def ref():
    return reference("corrpm", "lip")


def rel_err(ours: torch.Tensor, theirs: np.ndarray) -> float:
    theirs = torch.from_numpy(theirs)
    return float((ours.float() - theirs).abs().max() / theirs.abs().max())


def test_key_list_is_the_released_model(ref):
    keys = released_keys("corrpm", "lip")
    params = sum(
        int(np.prod(s))
        for k, s, d in keys
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert params == 71_714_652  # the released CorrPM_Model(20, 16)
    state = {k: torch.empty(s) for k, s, _ in keys}
    dead = {
        k: n
        for k, n in FORMAT.dead_parameters(state).items()
        if not k.endswith(("running_mean", "running_var"))
    }
    assert sum(dead.values()) == 148_578 == params - count_parameters(CorrPM(20, 16))
    assert sorted({k.rsplit(".", 2)[0] if "conv4" not in k else k.rsplit(".", 1)[0] for k in dead}) == [
        "edge_layer.conv4",
        "layer6.conv1",
        "layer6.conv2",
    ]
    # InPlace-ABN weights: every released normalisation layer but the pose head's two plain BatchNorms
    norm = {k.rsplit(".", 1)[0] for k, _, _ in keys if k.endswith("running_mean")}
    abn = {m for m in norm if is_abn_weight(m + ".weight")}
    assert norm - abn == {
        "pose_layer.deconv_layers.1",
        "pose_layer.deconv_layers.4",
        "layer6.conv1.1",
        "layer6.conv2.1",
    }
    assert ref["input"].shape == (2, 3, 96, 96) and ref["seg2"].shape == (2, 20, 24, 24)


def test_converted_corrpm_computes_the_released_forward(released_file, ref):
    torch.manual_seed(0)
    net = CorrPM(20, 16)
    record = load_released_weights(net, released_file, "corrpm")
    assert record["name"] == "LIP_best.pth" and record["dropped_dead"] == 148_578 + 2 * (256 + 48)
    assert net.released_weights is record
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(ref["input"]), all_heads=True)
    errs = {k: rel_err(out[k], ref[k]) for k in ("seg1", "seg2", "edge", "pose")}
    assert all(e < TOL for e in errs.values()), errs
    with torch.no_grad():  # the inference path (seg2 only) is the same function
        assert rel_err(net(torch.from_numpy(ref["input"]))["seg2"], ref["seg2"]) < TOL

    # control: reading InPlace-ABN weights as plain BatchNorm weights is visibly wrong (negative entries)
    plain = dataclasses.replace(FORMAT, abn_weight=lambda key: False)
    net.load_state_dict(plain.convert(read_released(released_file), net.state_dict()))
    with torch.no_grad():
        out = net(torch.from_numpy(ref["input"]), all_heads=True)
    assert min(rel_err(out[k], ref[k]) for k in ("seg1", "seg2", "edge", "pose")) > 100 * TOL


def test_strict_loading_names_every_problem(released_file, tmp_path):
    state = read_released(released_file)
    # a net of another size: the file's sizes are named with the fix
    with pytest.raises(
        ReleasedWeightsError,
        match=r"num_joints=16 but the model is built with num_joints=17; set model.num_joints=16",
    ):
        load_released_weights(CorrPM(20, 17, backbone="resnet18d"), released_file, "corrpm")
    with pytest.raises(
        ReleasedWeightsError, match=r"num_classes=20 but .* num_classes=18; num_classes follows data="
    ):
        load_released_weights(CorrPM(18, 16, backbone="resnet18d"), released_file, "corrpm")
    full = CorrPM(20, 16).state_dict()
    # missing, unexpected and mis-shaped keys, each listed, in one line naming the file
    broken = dict(state)
    broken.pop("module.out_layer.bias")
    broken["module.extra_head.weight"] = torch.zeros(3)
    broken["module.layer1.0.conv1.weight"] = torch.zeros(64, 128, 3, 3)
    with pytest.raises(ReleasedWeightsError) as e:
        FORMAT.convert(broken, full, "f.pth")
    msg = str(e.value)
    assert msg.startswith("f.pth: ") and "\n" not in msg
    assert (
        "unexpected released key(s): extra_head.weight" in msg
        and "missing from the file: classifier.bias" in msg
    )
    assert (
        "1 shape mismatch(es): layer1.0.conv1.weight (64, 128, 3, 3) -> backbone.body.layer1.0.conv1.weight (64, 128, 1, 1)"
        in msg
    )
    # a smaller trunk: the released blocks it lacks are named with their would-be names
    with pytest.raises(
        ReleasedWeightsError,
        match=r"no counterpart in this net: layer3.6.conv1.weight \(-> backbone.body.layer3.6",
    ):
        FORMAT.convert(state, CorrPM(20, 16, backbone="resnet50s").state_dict(), "f.pth")
    # the released wrapper prefix is optional; dead layers are dropped, not required
    bare = {k[len("module.") :]: v for k, v in state.items() if "layer6.conv1" not in k}
    assert set(FORMAT.convert(bare, full)) == set(full)


def test_released_files_are_read_safely(tmp_path):
    # anything beyond tensors and plain containers (here the training arguments) needs arbitrary unpickling
    bad = tmp_path / "pickled.pth"
    torch.save({"conv1.weight": torch.zeros(1), "args": argparse.Namespace(lr=0.1)}, bad)
    with pytest.raises(
        ReleasedWeightsError, match=r"pickled.pth: refused: the file needs more than tensors .*Namespace"
    ):
        read_released(bad)
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {"a": torch.ones(2)}, "epoch": 3}, nested)
    assert list(read_released(nested)) == ["a"]
    notsd = tmp_path / "list.pth"
    torch.save([torch.ones(1)], notsd)
    with pytest.raises(ReleasedWeightsError, match="list.pth: expected a state dict"):
        read_released(notsd)
    with pytest.raises(ReleasedWeightsError, match="does not exist"):
        read_released(tmp_path / "missing.pth")
    with pytest.raises(
        ReleasedWeightsError, match="model 'nope' has no released-checkpoint format; models with one: corrpm"
    ):
        get_format("nope")
