"""detectron2 DensePose model-zoo weights (``projects/DensePose``, ``densepose_rcnn_R_50_FPN_s1x`` and
``..._s1x_legacy``) → :class:`humanparse.models.densepose.DensePoseRCNN` names and values.

detectron2 names (``detectron2/modeling/backbone/{resnet,fpn}.py``, ``proposal_generator/rpn.py``,
``roi_heads/box_head.py``, ``projects/DensePose/densepose/modeling/roi_heads/{roi_head,v1convx}.py``,
``predictors/chart.py``) and the value changes:

* trunk ``backbone.bottom_up.stem / res2..res5`` → torchvision ``backbone.body.conv1 / layer1..layer4``
  (``convK.norm`` → ``bnK``, ``shortcut`` → ``downsample.0``, ``shortcut.norm`` → ``downsample.1``); the
  FrozenBN affine terms are buffers in both (``norm=frozen_bn``);
* FPN ``fpn_lateral{2..5}`` / ``fpn_output{2..5}`` → ``fpn.inner_blocks.{0..3}.0`` / ``fpn.layer_blocks.{0..3}.0``;
* RPN ``rpn_head.conv / objectness_logits / anchor_deltas`` → ``rpn.head.conv.0.0 / cls_logits / bbox_pred``;
* box head ``fc1 / fc2`` → ``fc6 / fc7``; ``cls_score`` orders (person, background) where torchvision orders
  (background, person): rows swapped; ``bbox_pred`` is class-agnostic-of-one-class (``NUM_CLASSES 1``: 4
  rows) where torchvision has 4 per class including background: the background rows are zero (never read);
* DensePose head ``body_conv_fcn{k}`` → ``head.layers.{2(k−1)}``; predictor names are the same; the decoder's
  ``p{2..5}.{j}`` (convs at j = 0, 2, 4 between the ×2 upsamplings) → ``scale_heads.{0..3}.{3j/2}`` (our
  scale heads hold an explicit ReLU after each conv).

The model-zoo ``.pkl`` files are pickled ``{"model": {name: numpy array}}``; :func:`read_detectron2_pkl` reads
them with an unpickler that only rebuilds numpy arrays (any other object in the file is refused).

Note: detectron2's trunk puts the stride of a bottleneck in its 1×1 conv (``STRIDE_IN_1X1``, MSRA weights);
torchvision's in the 3×3. The parameters have the same shapes; the detector computes the released function
only with a stride-in-1×1 trunk. The DensePose head itself (decoder, 8 convs, predictors) is exact.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import numpy as np
import torch

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")


def read_detectron2_pkl(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``model`` dict of a detectron2 ``.pkl`` (or a plain ``.pth`` state dict via
    ``torch.load(weights_only=True)``) as tensors; a bad file raises one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detectron2 DensePose weights not found")
    if path.suffix != ".pkl":
        sd = torch.load(path, map_location="cpu", weights_only=True)
        return dict(sd.get("model", sd)) if isinstance(sd, dict) else sd
    try:
        data = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a detectron2 weights pickle ({e})") from e
    model = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise ValueError(f"{path}: expected a dict with 'model' (name -> array)")
    return {k: torch.as_tensor(np.asarray(v)) for k, v in model.items() if isinstance(v, np.ndarray)}


_TRUNK = [
    (r"^backbone\.bottom_up\.stem\.conv1\.norm\.", "backbone.body.bn1."),
    (r"^backbone\.bottom_up\.stem\.conv1\.", "backbone.body.conv1."),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.",
        lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.downsample.1.",
    ),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.",
        lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.downsample.0.",
    ),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.",
        lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.",
    ),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.",
        lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.",
    ),
    (r"^backbone\.fpn_lateral(\d)\.", lambda m: f"backbone.fpn.inner_blocks.{int(m[1]) - 2}.0."),
    (r"^backbone\.fpn_output(\d)\.", lambda m: f"backbone.fpn.layer_blocks.{int(m[1]) - 2}.0."),
    (r"^proposal_generator\.rpn_head\.conv\.", "rpn.head.conv.0.0."),
    (r"^proposal_generator\.rpn_head\.objectness_logits\.", "rpn.head.cls_logits."),
    (r"^proposal_generator\.rpn_head\.anchor_deltas\.", "rpn.head.bbox_pred."),
    (r"^roi_heads\.box_head\.fc1\.", "roi_heads.box_head.fc6."),
    (r"^roi_heads\.box_head\.fc2\.", "roi_heads.box_head.fc7."),
    (r"^roi_heads\.box_predictor\.", "roi_heads.box_predictor."),
    (
        r"^roi_heads\.densepose_head\.body_conv_fcn(\d+)\.",
        lambda m: f"roi_heads.branches.densepose.head.layers.{2 * (int(m[1]) - 1)}.",
    ),
    (r"^roi_heads\.densepose_predictor\.", "roi_heads.branches.densepose.predictor."),
    (
        r"^roi_heads\.decoder\.p(\d)\.(\d+)\.",
        lambda m: (
            f"roi_heads.branches.densepose.pooler.decoder.scale_heads.{int(m[1]) - 2}.{3 * int(m[2]) // 2}."
        ),
    ),
    (r"^roi_heads\.decoder\.predictor\.", "roi_heads.branches.densepose.pooler.decoder.predictor."),
]


def rename(key: str) -> str | None:
    """Our name of a detectron2 key (None: not part of the model, e.g. the pixel mean/std)."""
    for pat, rep in _TRUNK:
        m = re.match(pat, key)
        if m:
            new = rep(m) if callable(rep) else rep
            return new + key[m.end() :]
    return None


def convert_detectron2(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """detectron2 DensePose R-CNN state dict → ours (names per :func:`rename`, box classifier rows swapped,
    class-specific box regression with zero background rows). Unknown keys raise."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for k, v in sd.items():
        if k in ("pixel_mean", "pixel_std") or k.endswith("num_batches_tracked"):
            continue
        new = rename(k)
        if new is None:
            unknown.append(k)
            continue
        v = torch.as_tensor(v)
        if new.startswith("roi_heads.box_predictor.cls_score.") and v.shape[0] == 2:
            v = v[[1, 0]]  # (person, background) → (background, person)
        elif new.startswith("roi_heads.box_predictor.bbox_pred.") and v.shape[0] == 4:
            v = torch.cat([torch.zeros_like(v), v])  # background rows (never read) + the person class
        out[new] = v
    if unknown:
        raise KeyError(
            f"detectron2 keys without a mapping: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
        )
    return out


def load_detectron2(net: torch.nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a detectron2 DensePose checkpoint into ``net`` (strict on the converted names and shapes);
    returns our keys the file did not fill (none for a full model-zoo file)."""
    sd = convert_detectron2(read_detectron2_pkl(path))
    own = net.state_dict()
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in sd.items()
        if k in own and own[k].shape != v.shape
    ]
    extra = [k for k in sd if k not in own]
    if bad or extra:
        raise ValueError(
            f"{path}: does not fit this DensePose-RCNN (preset / trunk): "
            + "; ".join((bad + [f"no parameter {k}" for k in extra])[:8])
        )
    net.load_state_dict(sd, strict=False)
    return [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
