"""The authors' released Parsing R-CNN checkpoints (soeaver/Parsing-R-CNN ``model_latest.pth``, saved as
``{"model": state_dict}``) in this implementation's names.

The released detector is, module for module, torchvision's R50-FPN Faster R-CNN (2 classes) plus the
parsing head; its trunk is Caffe-style (``BACKBONE.RESNET.STRIDE_3X3 False``: stride in the 1×1 conv,
``stride_in_1x1=True`` here), takes BGR pixels minus [102.98, 115.95, 122.77] with std 1 (the data's
``normalize``), and its BatchNorms are frozen affine layers (``utils/net.py::convert_bn2affine_model``:
statistics merged into weight and bias), loaded here into FrozenBatchNorm2d with mean 0 and variance
1 − eps. Released names (``rcnn/modeling``):

* ``Conv_Body.*`` (ResNet, torchvision's names) → ``backbone.body.*``
* ``Conv_Body_FPN.p5_in`` / ``fpn_in.{0,1,2}`` (C4, C3, C2 laterals) → ``backbone.fpn.inner_blocks.{3,2,1,0}.0``;
  ``p5_out`` / ``fpn_out.{0,1,2}`` → ``backbone.fpn.layer_blocks.{3,2,1,0}.0``
* ``RPN.head.conv`` → ``rpn.head.conv.0.0``; ``RPN.head.{cls_logits,bbox_pred}`` → ``rpn.head.*``
* ``Fast_RCNN.Head.fc6/fc7`` → ``roi_heads.box_head.*``; ``Fast_RCNN.Output.{cls_score,bbox_pred}`` →
  ``roi_heads.box_predictor.*``
* ``Parsing_RCNN.Head`` (``roi_gce_head``): ``conv_before_asppv3.k.0``, ``im_pool.1.0``, ``asppv3.k.0``
  (1×1 then rates 6/12/18), ``feat.0.0`` (1280 → 512 projection), ``feat.1.{theta,phi,g,out,gn}`` (non-local),
  ``conv_after_asppv3.k.0``; ``roi_convx_head``: ``parsing_fcn{k}``; ``Parsing_RCNN.Output.parsing_score_lowres``
  → ``roi_heads.branches.parsing.{head,output}.*``.

The numerics that differ from torchvision and are not weights: Detectron's anchors (integer-rounded, "+1"
box widths) and box decoding; proposals and boxes therefore differ slightly, while the parsing head on the
same RoI features computes the released function.
"""

from __future__ import annotations

import logging
import re

import torch

from humanparse.models.pretrained import PretrainedWeightsError, read_state_dict

log = logging.getLogger(__name__)

PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)
P = "roi_heads.branches.parsing"


def released_key_map(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a released state dict to this implementation's names (unknown keys are dropped)."""
    out: dict[str, torch.Tensor] = {}
    fpn_level = {"p5": 3, "0": 2, "1": 1, "2": 0}
    rules = [
        (r"^Conv_Body\.(.*)$", lambda m: f"backbone.body.{m[1]}"),
        (r"^Conv_Body_FPN\.p5_(in|out)\.(weight|bias)$",
         lambda m: f"backbone.fpn.{'inner' if m[1] == 'in' else 'layer'}_blocks.3.0.{m[2]}"),
        (r"^Conv_Body_FPN\.fpn_(in|out)\.(\d)\.(weight|bias)$",
         lambda m: f"backbone.fpn.{'inner' if m[1] == 'in' else 'layer'}_blocks.{fpn_level[m[2]]}.0.{m[3]}"),
        (r"^RPN\.head\.conv\.(weight|bias)$", lambda m: f"rpn.head.conv.0.0.{m[1]}"),
        (r"^RPN\.head\.(cls_logits|bbox_pred)\.(weight|bias)$", lambda m: f"rpn.head.{m[1]}.{m[2]}"),
        (r"^Fast_RCNN\.Head\.(fc6|fc7)\.(weight|bias)$", lambda m: f"roi_heads.box_head.{m[1]}.{m[2]}"),
        (r"^Fast_RCNN\.Output\.(cls_score|bbox_pred)\.(weight|bias)$", lambda m: f"roi_heads.box_predictor.{m[1]}.{m[2]}"),
        (r"^Parsing_RCNN\.Head\.conv_before_asppv3\.(\d+)\.0\.(weight|bias)$", lambda m: f"{P}.head.before.{m[1]}.0.{m[2]}"),
        (r"^Parsing_RCNN\.Head\.im_pool\.1\.0\.(weight|bias)$", lambda m: f"{P}.head.gce.image_pool.1.0.{m[1]}"),
        (r"^Parsing_RCNN\.Head\.asppv3\.(\d)\.0\.(weight|bias)$", lambda m: f"{P}.head.gce.aspp.{m[1]}.0.{m[2]}"),
        (r"^Parsing_RCNN\.Head\.feat\.0\.0\.(weight|bias)$", lambda m: f"{P}.head.gce.project.0.{m[1]}"),
        (r"^Parsing_RCNN\.Head\.feat\.1\.(theta|phi|g|out)\.(weight|bias)$",
         lambda m: f"{P}.head.gce.nonlocal_block.{m[1]}.{m[2]}"),
        (r"^Parsing_RCNN\.Head\.feat\.1\.gn\.(weight|bias)$", lambda m: f"{P}.head.gce.nonlocal_block.norm.{m[1]}"),
        (r"^Parsing_RCNN\.Head\.conv_after_asppv3\.(\d+)\.0\.(weight|bias)$", lambda m: f"{P}.head.after.{m[1]}.0.{m[2]}"),
        (r"^Parsing_RCNN\.Head\.parsing_fcn(\d+)\.(weight|bias)$", lambda m: f"{P}.head.after.{int(m[1]) - 1}.0.{m[2]}"),
        (r"^Parsing_RCNN\.Output\.parsing_score_lowres\.(weight|bias)$", lambda m: f"{P}.output.deconv.{m[1]}"),
    ]
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        for pattern, target in rules:
            m = re.match(pattern, k)
            if m:
                out[target(m)] = v
                break
    return out


def load_released(net: torch.nn.Module, path: str) -> int:
    """Load a released checkpoint into ``net`` (a :class:`ParsingRCNN` built with ``stride_in_1x1=True``,
    ``norm=frozen_bn`` and the released head: ``gce_dim=512``, ``nl_norm=gn``). Every parameter of the
    net must be covered; returns the number of tensors loaded."""
    sd = released_key_map(read_state_dict(path))
    own = net.state_dict()
    eps = {n: m.eps for n, m in net.named_modules() if hasattr(m, "running_var") and hasattr(m, "eps")}
    loaded = {}
    for k, v in sd.items():
        if k not in own:
            raise PretrainedWeightsError(f"{path}: released tensor maps to {k!r}, which this net does not have "
                                         "(build it with the released preset)")
        if own[k].shape != v.shape:
            raise PretrainedWeightsError(f"{path}: {k!r} has shape {tuple(v.shape)}, the net expects {tuple(own[k].shape)}")
        loaded[k] = v
        prefix = k.rsplit(".", 1)[0]
        if k.endswith(".weight") and prefix in eps and f"{prefix}.running_mean" not in sd:
            # frozen affine BN: statistics already merged into weight and bias
            loaded[f"{prefix}.running_mean"] = torch.zeros_like(own[f"{prefix}.running_mean"])
            loaded[f"{prefix}.running_var"] = torch.full_like(own[f"{prefix}.running_var"], 1.0 - eps[prefix])
    params = {n for n, _ in net.named_parameters()}
    missing = sorted(params - set(loaded))
    if missing:
        raise PretrainedWeightsError(f"{path}: the released checkpoint has no tensor for {len(missing)} parameters, "
                                     f"e.g. {missing[:3]}")
    net.load_state_dict(loaded, strict=False)
    log.info("loaded %d tensors of the released Parsing R-CNN from %s", len(loaded), path)
    return len(loaded)
