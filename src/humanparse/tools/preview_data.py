"""A few raw samples of any registered dataset, for viewers (the dataset notebook) and quick checks.

:func:`available_datasets` lists the datasets that have a reader, a synthetic generator and a
``conf/data/<name>.yaml``, so datasets added to :mod:`humanparse.data.registry` appear without changes
here. :func:`preview_samples` composes ``data=<name>`` exactly as training does, generates a small
synthetic set in the official layout (or reads ``root``) and returns ``Dataset.load`` samples: numpy
arrays at the original resolution, before any transform.
"""

from __future__ import annotations

from importlib import resources

from humanparse.data import registry

SMALL_SPLITS = {"num_train": 2, "num_val": 4, "num_test": 2}


def _has_data_config(name: str) -> bool:
    return (resources.files("humanparse") / "conf" / "data" / f"{name}.yaml").is_file()


def available_datasets(synthetic: bool = True) -> list[str]:
    """Registered datasets that can be previewed (with a synthetic generator when ``synthetic``)."""
    names = set(registry.READERS)
    if synthetic:
        names &= set(registry.GENERATORS)
    return sorted(n for n in names if _has_data_config(n))


def data_config(
    name: str, root: str | None = None, cache_dir: str | None = None, overrides: list[str] | None = None
):
    """The composed ``data`` node of ``train.yaml`` for ``data=<name>`` (synthetic unless ``root``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    import humanparse.utils.resolvers  # noqa: F401

    ov = [f"data={name}"] + (
        [f"data.root={root}", "data.synthetic=false"] if root else ["data.synthetic=true"]
    )
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="humanparse.conf", version_base="1.3"):
            cfg = compose("train", overrides=ov + list(overrides or []))
    finally:
        GlobalHydra.instance().clear()
    data = cfg.data
    with open_dict(data):
        if cache_dir:
            data.cache_dir = str(cache_dir)
        if "num_workers" in data:
            data.num_workers = 0
        opts = data.get("synthetic_options")
        if not root and opts is not None:
            for k, v in SMALL_SPLITS.items():
                if k in opts:
                    opts[k] = v
    return OmegaConf.create(OmegaConf.to_container(data, resolve=True))


def preview_samples(
    name: str,
    num: int = 2,
    split: str = "val",
    root: str | None = None,
    cache_dir: str | None = None,
    overrides: list[str] | None = None,
) -> list[dict]:
    """``num`` raw samples of ``split`` (generated synthetic data unless ``root`` is given)."""
    import hydra

    dm = hydra.utils.instantiate(data_config(name, root, cache_dir, overrides))
    dm.prepare_data()
    if hasattr(dm, "build_dataset"):
        ds = dm.build_dataset(split, train=False)
    else:
        ds = registry.reader_class(name)(dm.data_root(), split=split)
    n = min(num, len(ds))
    return [ds.load(i) if hasattr(ds, "load") else ds[i] for i in range(n)]
