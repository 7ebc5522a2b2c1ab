"""Initialisations of Parsing R-CNN (paper §4.3, Tables 5–7 and 9): ImageNet trunk, or COCO keypoints.

The paper pretrains on COCO keypoints and initialises the parsing branch from the pose head. torchvision's
``keypointrcnn_resnet50_fpn`` COCO weights give exactly that for the Mask R-CNN-style head: trunk, FPN,
RPN, box head (2 classes) and a pose head of 8 × conv3x3 512 (first 256 → 512), the shape of the 8conv
parsing baseline. With the GCE head (project choice) the convs before the GCE take the first pose convs
and the PBD convs the last ones, wherever the shapes match; everything else keeps its init.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from humanparse.models import pretrained
from humanparse.models.pretrained import PretrainedWeightsError, read_state_dict

log = logging.getLogger(__name__)

INITS = ("imagenet", "coco_keypoints")
POSE_CONVS = 8


def _download(what: str, weights_enum) -> dict[str, torch.Tensor]:
    """torchvision weights from the torch hub cache, else downloaded; offline: an immediate clear error."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum.url).name
    if not cached.is_file() and not pretrained.reachable("download.pytorch.org"):
        raise PretrainedWeightsError(
            f"cannot download {weights_enum} for {what}: download.pytorch.org is not reachable and "
            f"{cached} does not exist. Download {weights_enum.url} elsewhere and pass it as a local file "
            "(model.init_weights=/path/to/file.pth), or put it in the torch hub cache, or use model.init=null."
        )
    return weights_enum.get_state_dict(progress=False, check_hash=False)


def coco_keypoints_key_map(sd: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a ``keypointrcnn_resnet50_fpn`` state dict to this net's names: the body keeps its names,
    ``roi_heads.keypoint_head.{2k}`` → the parsing head's k-th matching 3×3 conv, the keypoint
    predictor is dropped."""
    head = net.branches["parsing"].head
    convs = head.convs()
    nb = len(head.before)
    targets = {k: k for k in range(nb)}  # convs before the GCE <- the first pose convs
    na = len(convs) - nb
    targets.update({nb + i: POSE_CONVS - na + i for i in range(na)})  # convs after <- the last pose convs
    names = {id(m): n for n, m in net.named_modules()}
    out = {k: v for k, v in sd.items() if not k.startswith("roi_heads.keypoint")}
    for ci, pk in targets.items():
        if not 0 <= pk < POSE_CONVS:
            continue
        for p in ("weight", "bias"):
            src = f"roi_heads.keypoint_head.{2 * pk}.{p}"
            if src in sd and getattr(convs[ci], p).shape == sd[src].shape:
                out[f"{names[id(convs[ci])]}.{p}"] = sd[src]
    return out


def load_init(net: nn.Module, init: str, weights: str | None = None) -> int:
    """Load ``init`` (``imagenet`` | ``coco_keypoints``) into ``net`` from ``weights`` (a local file) or
    torchvision's hub. Returns the number of tensors loaded."""
    import torchvision.models as tvm
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights

    if init not in INITS:
        raise ValueError(f"Parsing R-CNN init must be null or one of {INITS}, got {init!r}")
    if init == "imagenet":
        arch = type(net.backbone.body).__name__
        sd = (
            read_state_dict(weights)
            if weights
            else _download(f"the Parsing R-CNN trunk ({arch})", _imagenet_weights(tvm, net))
        )
        sd = {f"backbone.body.{k}": v for k, v in sd.items() if not k.startswith("fc.")}
    else:
        if weights is None and _trunk(net) != (16, 64):
            raise PretrainedWeightsError(
                "init=coco_keypoints needs the ResNet-50-FPN trunk "
                "(torchvision's keypointrcnn_resnet50_fpn) or a weights file"
            )
        sd = (
            read_state_dict(weights)
            if weights
            else _download("Parsing R-CNN (COCO keypoints init)", KeypointRCNN_ResNet50_FPN_Weights.COCO_V1)
        )
        sd = coco_keypoints_key_map(sd, net)
    return load_matching(net, sd, weights or init, "Parsing R-CNN", init)


def load_matching(net: nn.Module, sd: dict[str, torch.Tensor], source: str, model: str, init: str) -> int:
    """Load the tensors of ``sd`` whose names the net has (a partial init), every shape checked; a file
    that matches nothing, or a tensor of another shape, is an error naming ``source``."""
    own = net.state_dict()
    loaded = {}
    for k, v in sd.items():
        if k in own:
            if own[k].shape != v.shape:
                raise PretrainedWeightsError(
                    f"{source}: tensor {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
                )
            loaded[k] = v
    if not loaded:
        raise PretrainedWeightsError(f"{source}: no tensor name matches the {model} parameters")
    net.load_state_dict(loaded, strict=False)
    log.info("%s init %s: loaded %d/%d tensors from %s", model, init, len(loaded), len(own), source)
    return len(loaded)


def _trunk(net) -> tuple[int, int]:
    """(number of residual blocks, width of the first block's 1×1 conv) of the ResNet trunk."""
    body = net.backbone.body
    return sum(len(getattr(body, f"layer{i}")) for i in range(1, 5)), body.layer1[0].conv1.out_channels


def _imagenet_weights(tvm, net):
    depth, width = _trunk(net)
    table = {
        (16, 64): tvm.ResNet50_Weights.IMAGENET1K_V1,
        (33, 64): tvm.ResNet101_Weights.IMAGENET1K_V1,
        (33, 256): tvm.ResNeXt101_32X8D_Weights.IMAGENET1K_V1,
    }
    if (depth, width) not in table:
        raise PretrainedWeightsError(
            f"no torchvision ImageNet weights for this trunk ({depth} blocks); "
            "give a local file with model.init_weights=/path/to/weights.pth"
        )
    return table[(depth, width)]
