"""Key map from the released Grapy-ML checkpoints (``Charleshhy/Grapy-ML``: ``DeepLabv3_plus``,
``DeepLabv3_plus_multi_set``, ``GrapyNet``, ``GrapyMutualLearning`` state dicts) to this package's modules
(:class:`~humanparse.models.grapy.deeplab.DeepLabV3PlusXception` / :class:`~humanparse.models.grapy.grapy.GrapyNet`).

The released Xception (``networks/deeplab_xception_synBN.py``) and timm's ``xception65`` have the same layers;
only names differ. Layers the released nets build but never run (``transform``, ``semantic`` of a
``GrapyNet``, ``semantic_aux_*`` of a ``GrapyMutualLearning``) are dropped.

Two ways in: ``model.init_from=<file>`` (:func:`load_weights`: DeepLab v3+ stage files too, and a
mutual-learning file into a single-dataset net) and ``model.weights=<file>`` (the project's strict
released-checkpoint loader, :data:`FORMAT` / :data:`FORMAT_ML`, for files of the same net).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch

from humanparse.models.released import ReleasedFormat

log = logging.getLogger(__name__)

# dataset order of the released mutual-learning nets (train_gpm_ml.py: 0 CIHP, 1 PASCAL, 2 ATR)
RELEASED_DATASETS = ("cihp", "pascal", "atr")
_SEP = {"depthwise": "conv_dw", "depthwise_bn": "bn_dw", "pointwise": "conv_pw", "pointwise_bn": "bn_pw"}


def _separable(rest: str) -> str:
    part, _, tail = rest.partition(".")
    return f"{_SEP[part]}.{tail}"


def _block(n: int, rest: str) -> str:
    """``blockN.<rest>`` → timm ``blocks.{N-1}.<...>``."""
    b = f"backbone.body.blocks.{n - 1}"
    if rest.startswith("skip."):
        return f"{b}.shortcut.conv.{rest[5:]}"
    if rest.startswith("skipbn."):
        return f"{b}.shortcut.bn.{rest[7:]}"
    m = re.match(r"block2_lastconv\.1\.(.*)", rest)
    if m:
        return f"{b}.stack.conv3.{_separable(m.group(1))}"
    m = re.match(r"rep\.(\d+)\.(.*)", rest)
    if not m:
        raise KeyError(rest)
    idx = int(m.group(1))
    # separable convs sit at odd positions after a leading ReLU; block 1 starts without it (0, 2, 4)
    j = idx // 2 + 1 if n == 1 else (idx + 1) // 2
    return f"{b}.stack.conv{j}.{_separable(m.group(2))}"


def _reasoning(rest: str) -> str:
    rest = rest.replace("graph_transfer_back.", "project_out.").replace("graph_transfer.", "project_in.")
    m = re.match(r"attn(\d)\.(query|key|value)_conv\.(.*)", rest)
    if m:
        return f"rounds.{int(m.group(1)) - 1}.{m.group(2)}.{m.group(3)}"
    m = re.match(r"bn(\d)\.(.*)", rest)
    if m:
        return f"norms.{int(m.group(1)) - 1}.{m.group(2)}"
    return rest


def map_key(key: str) -> str | None:
    """One released key → this package's key (``None``: a layer the released forward never runs)."""
    k = key[7:] if key.startswith("module.") else key
    stem = {"conv1.": "stem.0.conv.", "bn1.": "stem.0.bn.", "conv2.": "stem.1.conv.", "bn2.": "stem.1.bn."}
    if k.startswith("xception_features."):
        r = k[len("xception_features.") :]
        for old, new in stem.items():
            if r.startswith(old):
                return f"backbone.body.{new}{r[len(old) :]}"
        m = re.match(r"block(\d+)\.(.*)", r)
        if m:
            return _block(int(m.group(1)), m.group(2))
        m = re.match(r"conv([345])\.(.*)", r)
        if m:
            return f"backbone.body.blocks.20.stack.conv{int(m.group(1)) - 2}.{_separable(m.group(2))}"
        raise KeyError(key)
    simple = {
        "aspp1.atrous_convolution.": "aspp.conv1x1.0.",
        "aspp1.bn.": "aspp.conv1x1.1.",
        "global_avg_pool.1.": "aspp.image_pool.1.0.",
        "global_avg_pool.2.": "aspp.image_pool.1.1.",
        "concat_projection_conv1.": "aspp.project.0.",
        "concat_projection_bn1.": "aspp.project.1.",
        "feature_projection_conv1.": "decoder.low_project.0.",
        "feature_projection_bn1.": "decoder.low_project.1.",
    }
    for old, new in simple.items():
        if k.startswith(old):
            return new + k[len(old) :]
    m = re.match(r"aspp([234])\.atrous_convolution\.(.*)", k)
    if m:
        return f"aspp.atrous.{int(m.group(1)) - 2}.{_separable(m.group(2))}"
    m = re.match(r"decoder\.([01])\.atrous_convolution\.(.*)", k)
    if m:
        return f"decoder.convs.{m.group(1)}.{_separable(m.group(2))}"
    raise KeyError(key)


def rename_key(key: str, gpm: bool) -> str | None:
    """One released key (``module.`` stripped) → ours; ``None`` for a layer the released forward never runs.
    ``gpm``: the key comes from a ``GrapyNet`` / ``GrapyMutualLearning`` (else a DeepLab v3+ stage file)."""
    if key.startswith("transform.") or (gpm and key.startswith(("semantic.", "semantic_aux_"))):
        return None  # built but never run by the released forward
    if key.startswith("gcn_network."):
        r = key[len("gcn_network.") :]
        m = re.match(r"gcn_block_feature([123])\.(.*)", r)
        m_ml = re.match(r"gcn_block_feature_(cihp|pascal|atr)\.(.*)", r)
        m_sem = re.match(r"sem(?:_(cihp|pascal|atr))?\.(.*)", r)
        m_tr = re.match(r"transform_lv([123])\.(.*)", r)
        if m and m.group(1) in "12":
            return f"gpm.reason.{m.group(1)}.{_reasoning(m.group(2))}"
        if m:
            return f"gpm.reason_fine.0.{_reasoning(m.group(2))}"
        if m_ml:
            return f"gpm.reason_fine.{RELEASED_DATASETS.index(m_ml.group(1))}.{_reasoning(m_ml.group(2))}"
        if m_sem:
            d = RELEASED_DATASETS.index(m_sem.group(1)) if m_sem.group(1) else 0
            return f"deeplab.classifiers.{d}.{m_sem.group(2)}"
        if m_tr:
            return f"gpm.distribute.{m_tr.group(1)}.{m_tr.group(2)}"
        if r.startswith("fusion."):
            return f"gpm.{r}"
        raise KeyError(key)
    if gpm and key.startswith("sem2"):
        m = re.match(r"sem2(?:_(cihp|pascal|atr))?\.(.*)", key)
        d = RELEASED_DATASETS.index(m.group(1)) if m.group(1) else 0
        return f"classifiers.{d}.{m.group(2)}"
    if key.startswith("semantic."):
        return f"classifiers.0.{key[len('semantic.') :]}"
    if key.startswith("semantic_aux_"):
        m = re.match(r"semantic_aux_(cihp|pascal|atr)\.(.*)", key)
        return f"classifiers.{RELEASED_DATASETS.index(m.group(1))}.{m.group(2)}"
    return ("deeplab." if gpm else "") + map_key(key)


def released_to_humanparse(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a released Grapy-ML / DeepLab v3+ state dict to :class:`GrapyNet` (GPM checkpoints) or
    :class:`DeepLabV3PlusXception` (DeepLab-stage checkpoints) keys, dropping never-run layers."""
    keys = [k[7:] if k.startswith("module.") else k for k in state]
    gpm = any(k.startswith("gcn_network.") for k in keys)
    out: dict[str, torch.Tensor] = {}
    for key, value in zip(keys, state.values()):
        new = rename_key(key, gpm)
        if new is not None:
            out[new] = value
    return out


@dataclass(frozen=True)
class GrapyReleasedFormat(ReleasedFormat):
    """The released ``GrapyNet`` / ``GrapyMutualLearning`` files: renamed by :func:`rename_key` (the released
    Xception's block/rep layout needs more than prefix pairs)."""

    def rename(self, key: str) -> str | None:
        try:
            return rename_key(key, gpm=True)
        except (KeyError, ValueError):
            return None


# model.weights=<released .pth> (humanparse.models.released): GPM of one dataset, and the mutual-learning net
FORMAT = GrapyReleasedFormat(
    model="grapy",
    source="Charleshhy/Grapy-ML (networks/grapy_net.py GrapyNet, train_gpm.py)",
    renames=(),
    dead=("transform.", "semantic."),
    wrapper_prefixes=("module.",),
    preset=None,
)
FORMAT_ML = GrapyReleasedFormat(
    model="grapy_ml",
    source="Charleshhy/Grapy-ML (networks/grapy_net.py GrapyMutualLearning, train_gpm_ml.py)",
    renames=(),
    dead=("transform.", "semantic_aux_"),
    wrapper_prefixes=("module.",),
    preset=None,
)


_PER_DATASET = re.compile(r"^(deeplab\.classifiers|gpm\.reason_fine|classifiers)\.(\d+)\.(.*)$")


def load_weights(
    net: torch.nn.Module,
    path: str,
    datasets: list[str],
    source_datasets: list[str] | None = None,
    deeplab_prefix: str = "deeplab.",
) -> int:
    """Initialise a Grapy-ML net from a checkpoint; returns the number of tensors loaded.

    ``path``: a Lightning checkpoint or state dict of this package's nets (``net.`` prefixes stripped), or a
    released Grapy-ML / DeepLab v3+ ``.pth`` (renamed by :func:`released_to_humanparse`). A DeepLab v3+
    checkpoint loaded into a :class:`GrapyNet` fills its trunk and raw classifiers (the two-stage schedule,
    paper §4.1). Per-dataset heads are matched by dataset name: ``source_datasets`` names the checkpoint's
    heads in order (default: ``datasets``; released mutual-learning nets: cihp, pascal_person_part, atr), so a
    mutual-learning checkpoint fine-tunes a single-dataset net with that dataset's heads.
    Every trunk tensor must be present; missing GPM or head tensors are logged.
    """
    from humanparse.models.pretrained import PretrainedWeightsError, read_state_dict

    sd = read_state_dict(path)
    sd = {k.split(".", 1)[1] if k.startswith(("net.", "module.")) else k: v for k, v in sd.items()}
    if any(k.startswith(("xception_features.", "gcn_network.")) for k in sd):
        sd = released_to_humanparse(sd)
    own = net.state_dict()
    if (
        deeplab_prefix
        and any(k.startswith(deeplab_prefix) for k in own)
        and not any(k.startswith(deeplab_prefix) for k in sd)
    ):
        sd = {deeplab_prefix + k: v for k, v in sd.items()}  # a DeepLab v3+ (stage-1) checkpoint
    source = list(source_datasets) if source_datasets is not None else list(datasets)
    mapped: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        m = _PER_DATASET.match(k)
        if m:
            i = int(m.group(2))
            if i >= len(source) or source[i] not in datasets:
                continue
            k = f"{m.group(1)}.{datasets.index(source[i])}.{m.group(3)}"
        if k not in own:
            continue
        if own[k].shape != v.shape:
            raise PretrainedWeightsError(
                f"{path}: tensor {k!r} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(own[k].shape)} (check the dataset order: source_datasets)"
            )
        mapped[k] = v
    trunk = [
        k
        for k in own
        if not _PER_DATASET.match(k)
        and not k.startswith(("gpm.", "classifiers."))
        and "num_batches_tracked" not in k
    ]
    absent = [k for k in trunk if k not in mapped]
    if absent:
        raise PretrainedWeightsError(
            f"{path}: {len(absent)} trunk tensors missing (e.g. {absent[:3]}); not a "
            "DeepLab v3+ / Grapy-ML checkpoint of this backbone"
        )
    net.load_state_dict(mapped, strict=False)
    missing = [k for k in own if k not in mapped and "num_batches_tracked" not in k]
    log.info(
        "loaded %d/%d tensors from %s%s",
        len(mapped),
        len(own),
        path,
        f" ({len(missing)} left at their initialisation, e.g. {missing[:3]})" if missing else "",
    )
    return len(mapped)
