"""The released CorrPM checkpoints (``ziwei-zh/CorrPM``: ``LIP_best.pth`` and the ATR / PASCAL-Person-Part
files), as the released ``evaluate.py`` loads them: a plain state dict saved from ``DataParallel``
(``module.`` on every key, stripped on load) of ``networks/model.py::CorrPM_Model``.

Key map (released → :class:`~humanparse.models.corrpm.CorrPM`):

================================  ==========================================================
``conv1/bn1/conv2/bn2/conv3``     deep stem → timm ``backbone.body.conv1.{0,1,3,4,6}``
``bn3``                           → ``backbone.body.bn1``
``layer1..layer4``                → ``backbone.body.layer1..layer4`` (same block names)
``layer5`` (ASPPModule)           → ``parsing_encoder.aspp`` (branches pool, 1×1, d12, d24, d36)
``layer6.conv3 / conv4``          → ``parsing_encoder.fuse(+_act) / classifier`` (fp, seg1)
``edge_layer.conv1..3/6/5``       → ``edge_encoder.reduce.0..2 / fuse / classifier`` (fb, edge)
``pose_layer``                    → ``pose_encoder`` (deconvolutions, heatmap conv)
``conv_fuse``                     → ``fusion.Wa(+_act)`` (fh)
``nl_SEP``                        → ``fusion.non_local`` (θ, φ, g, W)
``out_layer``                     → ``classifier`` (seg2)
================================  ==========================================================

Dropped on purpose: ``layer6.conv1``, ``layer6.conv2`` (CE2P decoder layers that ``Decoder_Module.forward``
never calls) and ``edge_layer.conv4`` (its per-level edge maps are computed and overwritten by ``conv5``):
148,578 parameters that never influence an output.

Normalisation: every ``InPlaceABN(Sync)`` of the released net (all but the pose head's plain
``nn.BatchNorm2d``) scales by ``|w| + eps`` in eval mode (``libs/src/bn.cu::forward_kernel``), so its weight
becomes ``|w| + 1e-5`` in our ``BatchNorm2d``. Its activation is LeakyReLU(0.01) where the released code
builds it with the default ``activation='leaky_relu'`` (ASPP, decoder, edge, fusion: our ``NormAct``
``leaky_relu``) and none where it uses ``activation='none'`` (ResNet, followed by ReLU as in ours; the
non-local ``W``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from humanparse.models.released import ReleasedFormat

_STEM = (
    ("conv1.", "backbone.body.conv1.0."),
    ("bn1.", "backbone.body.conv1.1."),
    ("conv2.", "backbone.body.conv1.3."),
    ("bn2.", "backbone.body.conv1.4."),
    ("conv3.", "backbone.body.conv1.6."),
    ("bn3.", "backbone.body.bn1."),
)
_TRUNK = tuple((f"layer{i}.", f"backbone.body.layer{i}.") for i in range(1, 5))
_ASPP = (
    ("layer5.conv1.1.", "parsing_encoder.aspp.branches.0.conv.0."),  # conv1 = (pool, conv, ABN)
    ("layer5.conv1.2.", "parsing_encoder.aspp.branches.0.conv.1."),
    ("layer5.conv2.", "parsing_encoder.aspp.branches.1."),
    ("layer5.conv3.", "parsing_encoder.aspp.branches.2."),
    ("layer5.conv4.", "parsing_encoder.aspp.branches.3."),
    ("layer5.conv5.", "parsing_encoder.aspp.branches.4."),
    ("layer5.bottleneck.0.", "parsing_encoder.aspp.project.0.0."),
    ("layer5.bottleneck.1.", "parsing_encoder.aspp.project.0.1."),
)
_HEADS = (
    ("layer6.conv3.0.", "parsing_encoder.fuse."),
    ("layer6.conv3.1.", "parsing_encoder.fuse_act.0."),
    ("layer6.conv4.", "parsing_encoder.classifier."),
    ("edge_layer.conv1.", "edge_encoder.reduce.0."),
    ("edge_layer.conv2.", "edge_encoder.reduce.1."),
    ("edge_layer.conv3.", "edge_encoder.reduce.2."),
    ("edge_layer.conv6.", "edge_encoder.fuse."),
    ("edge_layer.conv5.", "edge_encoder.classifier."),
    ("pose_layer.deconv_layers.0.", "pose_encoder.deconv.0."),
    ("pose_layer.deconv_layers.1.", "pose_encoder.deconv.1.0."),
    ("pose_layer.deconv_layers.3.", "pose_encoder.deconv.2."),
    ("pose_layer.deconv_layers.4.", "pose_encoder.deconv.3.0."),
    ("pose_layer.final_layer.", "pose_encoder.classifier."),
    ("conv_fuse.0.", "fusion.Wa."),
    ("conv_fuse.1.", "fusion.Wa_act.0."),
    ("nl_SEP.theta.", "fusion.non_local.theta."),
    ("nl_SEP.phi.0.", "fusion.non_local.phi."),
    ("nl_SEP.g.0.", "fusion.non_local.g."),
    ("nl_SEP.W.", "fusion.non_local.W."),
    ("out_layer.", "classifier."),
)
DEAD = ("layer6.conv1.", "layer6.conv2.", "edge_layer.conv4.")
# the only plain nn.BatchNorm2d layers of the released net (SimpleBaseline's pose deconvolutions)
PLAIN_BN = ("pose_layer.deconv_layers.1.", "pose_layer.deconv_layers.4.")
_ABN_WEIGHT_MODULES = (
    (
        "bn1",
        "bn2",
        "bn3",
        "layer5.conv1.2",
        "layer5.bottleneck.1",
        "layer6.conv3.1",
        "conv_fuse.1",
        "nl_SEP.W.1",
    )
    + tuple(f"layer5.conv{i}.1" for i in range(2, 6))
    + tuple(f"edge_layer.conv{i}.1" for i in range(1, 4))
)


def is_abn_weight(key: str) -> bool:
    """Whether a released key is the affine weight of an InPlace-ABN layer: the stem and every ResNet
    ``bn*`` / ``downsample.1``, and the ABNs of the heads listed above."""
    if not key.endswith(".weight"):
        return False
    module = key[: -len(".weight")]
    if module.startswith(("layer1.", "layer2.", "layer3.", "layer4.")):
        last = module.rsplit(".", 1)[-1]
        return last in ("bn1", "bn2", "bn3") or module.endswith("downsample.1")
    return module in _ABN_WEIGHT_MODULES


def file_config(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Classes and joint heatmaps of a released file (its seg2 and heatmap convolutions)."""
    out = {}
    if "out_layer.weight" in state:
        out["num_classes"] = int(state["out_layer.weight"].shape[0])
    if "pose_layer.final_layer.weight" in state:
        out["num_joints"] = int(state["pose_layer.final_layer.weight"].shape[0])
    return out


FORMAT = ReleasedFormat(
    model="corrpm",
    source="ziwei-zh/CorrPM (networks/model.py CorrPM_Model, loaded as in evaluate.py)",
    renames=_STEM + _TRUNK + _ASPP + _HEADS,
    dead=DEAD,
    abn_weight=is_abn_weight,
    abn_eps=1e-5,  # InPlaceABN(Sync) default eps, used by every released layer
    wrapper_prefixes=("module.",),
    preset="corrpm_released",
    file_config=file_config,
    settable=("num_joints",),
)
