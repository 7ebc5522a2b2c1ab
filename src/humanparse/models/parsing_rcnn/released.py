"""The authors' released Parsing R-CNN checkpoints (soeaver/Parsing-R-CNN ``model_latest.pth``, saved by
``utils/checkpointer.py`` as ``{"model": state_dict}`` of ``rcnn/modeling/model_builder.py::Generalized_RCNN``),
declared for :mod:`humanparse.models.released` (``model.weights=<file>`` or ``python -m humanparse.convert``).

The released detector is, module for module, torchvision's R50-FPN Faster R-CNN (2 classes) plus the
parsing head. Its trunk is Caffe-style (``BACKBONE.RESNET.STRIDE_3X3 False``: the stride in the 1×1 conv;
``model.stride_in_1x1=true``), takes BGR pixels minus [102.98, 115.95, 122.77] with std 1 (the preset's
``data.normalize``), and its BatchNorms are frozen affine layers holding only weight and bias
(``tools/train_net.py`` → ``utils/net.py::convert_bn2affine_model`` merges the statistics;
``model.norm=affine``). Key map (released → ours):

=========================================  ======================================================
``Conv_Body.``                             ``backbone.body.`` (torchvision's ResNet names)
``Conv_Body_FPN.p5_in.`` / ``fpn_in.0/1/2.``   ``backbone.fpn.inner_blocks.3/2/1/0.0.`` (C5, C4, C3, C2)
``Conv_Body_FPN.p5_out.`` / ``fpn_out.0/1/2.`` ``backbone.fpn.layer_blocks.3/2/1/0.0.``
``RPN.head.conv.``                         ``rpn.head.conv.0.0.``; ``cls_logits``, ``bbox_pred`` as they are
``Fast_RCNN.Head.fc6/fc7.``                ``roi_heads.box_head.fc6/fc7.``
``Fast_RCNN.Output.``                      ``roi_heads.box_predictor.``
``Parsing_RCNN.Head.`` (``roi_gce_head``)   ``im_pool.1.0`` → ``gce.image_pool.1.0``, ``asppv3.k.0`` →
                                           ``gce.aspp.k.0`` (1×1, then rates 6/12/18), ``feat.0.0`` →
                                           ``gce.project.0``, ``feat.1.{theta,phi,g,out,gn}`` → ``gce.nonlocal_block``,
                                           ``conv_before/after_asppv3.k.0`` → ``before/after.k.0``
``Parsing_RCNN.Head.parsing_fcnK.``        ``after.(K-1).0.`` (the ``roi_convx_head`` baseline)
``Parsing_RCNN.Output.parsing_score_lowres.``  ``output.deconv.``
=========================================  ======================================================

Dropped: ``RPN.anchor_generator.cell_anchors.*`` (buffers of precomputed anchors; torchvision makes its own).
Not weights, and not the same: Detectron's anchors (integer-rounded, "+1" widths) and box decoding, so
proposals and boxes differ slightly; on the same RoI features the parsing head computes the released
function (checked against the released ``roi_gce_head`` + ``Parsing_output``: max difference 3e-7).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from humanparse.models.released import ReleasedFormat

PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)
_P = "roi_heads.branches.parsing."
_HEAD = "Parsing_RCNN.Head."

RENAMES = (
    ("Conv_Body.", "backbone.body."),
    ("Conv_Body_FPN.p5_in.", "backbone.fpn.inner_blocks.3.0."),
    ("Conv_Body_FPN.p5_out.", "backbone.fpn.layer_blocks.3.0."),
    *((f"Conv_Body_FPN.fpn_in.{i}.", f"backbone.fpn.inner_blocks.{2 - i}.0.") for i in range(3)),
    *((f"Conv_Body_FPN.fpn_out.{i}.", f"backbone.fpn.layer_blocks.{2 - i}.0.") for i in range(3)),
    ("RPN.head.conv.", "rpn.head.conv.0.0."),
    ("RPN.head.cls_logits.", "rpn.head.cls_logits."),
    ("RPN.head.bbox_pred.", "rpn.head.bbox_pred."),
    ("Fast_RCNN.Head.", "roi_heads.box_head."),
    ("Fast_RCNN.Output.", "roi_heads.box_predictor."),
    (_HEAD + "im_pool.1.0.", _P + "head.gce.image_pool.1.0."),
    (_HEAD + "asppv3.", _P + "head.gce.aspp."),
    (_HEAD + "feat.0.0.", _P + "head.gce.project.0."),
    (_HEAD + "feat.1.gn.", _P + "head.gce.nonlocal_block.norm."),
    (_HEAD + "feat.1.", _P + "head.gce.nonlocal_block."),
    (_HEAD + "conv_before_asppv3.", _P + "head.before."),
    (_HEAD + "conv_after_asppv3.", _P + "head.after."),
    *((f"{_HEAD}parsing_fcn{k}.", f"{_P}head.after.{k - 1}.0.") for k in range(1, 17)),
    ("Parsing_RCNN.Output.parsing_score_lowres.", _P + "output.deconv."),
)


def file_config(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Parsing classes of a released file (its deconv: ConvTranspose2d weight is (in, C, 4, 4))."""
    w = state.get("Parsing_RCNN.Output.parsing_score_lowres.weight")
    return {"num_classes": int(w.shape[1])} if w is not None else {}


FORMAT = ReleasedFormat(
    model="parsing_rcnn",
    source="soeaver/Parsing-R-CNN (rcnn/modeling/model_builder.py Generalized_RCNN, utils/checkpointer.py)",
    renames=RENAMES,
    dead=("RPN.anchor_generator.",),
    wrapper_prefixes=("module.",),
    preset="parsing_rcnn_cihp_released",
    file_config=file_config,
)
