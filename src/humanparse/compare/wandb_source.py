"""Runs from Weights & Biases: the public API (``wandb.Api``), or offline run folders read locally.

Both give objects with the attributes of ``wandb.apis.public.Run`` that the comparison uses — ``id``,
``name``, ``project``, ``entity``, ``group``, ``job_type``, ``state``, ``config`` (the resolved humanparse
config the run logged), ``summary`` (last value of every logged key) and ``scan_history(keys=...)`` — so
one function (:func:`record_from_wandb_run`) turns either into the same :class:`~.runs.RunRecord` a local
run folder gives.

Offline runs (``WANDB_MODE=offline`` / ``logger.wandb.offline=true``) are stored as
``<run_dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``: a LevelDB-style log (32 KiB blocks, 7-byte
record headers: CRC-32, length, type full/first/middle/last) after a 7-byte ``:W&B`` file header, whose
records are ``wandb_internal_pb2.Record`` protobufs. wandb ships no reader for it in Python any more (its
core is in Go), so :class:`OfflineRun` parses it here; only the run, config, history, summary and exit
records are used.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from humanparse.compare.runs import RunRecord, clean_number, record_from_config

log = logging.getLogger(__name__)

# wandb run state -> record status
STATE_TO_STATUS = {"finished": "finished", "failed": "failed", "crashed": "failed", "killed": "failed"}

_FILE_HEADER = struct.Struct("<4sHB")  # ident ":W&B", magic, version
_REC_HEADER = struct.Struct("<IHB")  # crc32, length, type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class WandbDataError(ValueError):
    """An offline ``.wandb`` file that cannot be read; the message names the file."""


def read_wandb_records(path: str | Path) -> Iterator[bytes]:
    """The record payloads of a ``.wandb`` file (checksums verified)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _FILE_HEADER.size or data[:4] != b":W&B":
        raise WandbDataError(f"{path}: not a wandb run file (no ':W&B' header)")
    pos = _FILE_HEADER.size
    pending = b""
    while pos + _REC_HEADER.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _REC_HEADER.size:  # block trailer: zero padding
            pos += left
            continue
        crc, length, kind = _REC_HEADER.unpack_from(data, pos)
        start = pos + _REC_HEADER.size
        chunk = data[start : start + length]
        pos = start + length
        if kind == 0 and length == 0:
            continue
        if len(chunk) < length:
            log.warning("%s: truncated last record ignored (run still being written?)", path)
            break
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise WandbDataError(f"{path}: checksum mismatch at byte {start - _REC_HEADER.size}")
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        else:
            raise WandbDataError(f"{path}: unknown record type {kind} at byte {start - _REC_HEADER.size}")


def _item_key(item) -> str:
    # a logged "val/miou" arrives as nested_key ["val/miou"]; real nesting (["_wandb", "runtime"]) joins with "."
    return item.key if item.key else ".".join(item.nested_key)


def _item_value(item):
    if item.value_json:
        try:
            return json.loads(item.value_json)
        except json.JSONDecodeError:
            return item.value_json
    # newer wandb versions write typed history values
    which = item.WhichOneof("value") if "value" in [o.name for o in item.DESCRIPTOR.oneofs] else None
    return getattr(item, which) if which and which != "none" else None


class OfflineRun:
    """A wandb offline run folder, with the attributes of ``wandb.apis.public.Run`` used here."""

    def __init__(self, wandb_file: str | Path):
        from wandb.proto import wandb_internal_pb2 as pb

        self.path_on_disk = Path(wandb_file)
        self.id = self.path_on_disk.stem.removeprefix("run-")
        self.name = self.id
        self.project: str | None = None
        self.entity: str | None = None
        self.group: str | None = None
        self.job_type: str | None = None
        self.sweep = None
        self.tags: list[str] = []
        self.config: dict = {}
        self.summary: dict = {}
        self._history: list[dict] = []
        exit_code = None
        for payload in read_wandb_records(self.path_on_disk):
            rec = pb.Record()
            rec.ParseFromString(payload)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                r = rec.run
                self.id = r.run_id or self.id
                self.name = r.display_name or self.id
                self.project, self.entity = r.project or None, r.entity or None
                self.group, self.job_type = r.run_group or None, r.job_type or None
                self.tags = list(r.tags)
                self._apply_config(r.config)
            elif kind == "config":
                self._apply_config(rec.config)
            elif kind == "history":
                self._history.append({_item_key(i): _item_value(i) for i in rec.history.item})
            elif kind == "summary":
                for u in rec.summary.update:
                    if not u.nested_key or len(u.nested_key) == 1:
                        self.summary[_item_key(u)] = _item_value(u)
            elif kind == "exit":
                exit_code = rec.exit.exit_code
        self.config.pop("_wandb", None)
        self.state = "running" if exit_code is None else ("finished" if exit_code == 0 else "failed")

    def _apply_config(self, config_record) -> None:
        for u in config_record.update:
            key = u.key or ".".join(u.nested_key)
            self.config[key] = _item_value(u)
        for r in config_record.remove:
            self.config.pop(r.key or ".".join(r.nested_key), None)

    @property
    def path(self) -> list[str]:
        return [self.entity or "", self.project or "", self.id]

    def scan_history(self, keys: list[str] | None = None, page_size: int = 1000) -> Iterator[dict]:
        """Logged rows; with ``keys``, only rows holding all of them, restricted to them (as the API does)."""
        for row in self._history:
            if keys is None:
                yield dict(row)
            elif all(k in row for k in keys):
                yield {k: row[k] for k in keys}


class OfflineApi:
    """``wandb.Api`` look-alike over the offline runs found under ``root`` (``runs()`` only)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"offline_dir={root}: no such folder")

    def runs(self, path: str | None = None, filters: dict | None = None, **_) -> list[OfflineRun]:
        project = (path or "").split("/")[-1] or None
        out = []
        for f in sorted(self.root.rglob("run-*.wandb")):
            run = OfflineRun(f)
            if project and run.project not in (None, project):
                continue
            out.append(run)
        return out


def _summary_dict(summary) -> dict:
    if isinstance(summary, dict):
        return summary
    for attr in ("_json_dict",):
        d = getattr(summary, attr, None)
        if isinstance(d, dict):
            return d
    try:
        return dict(summary.items())
    except (AttributeError, TypeError):
        return {}


def _history_frame(run, keys: list[str] | None) -> pd.DataFrame:
    rows: list[dict] = []
    wanted = list(keys or [])
    if wanted:
        for k in wanted:  # one scan per key: the API only returns rows that hold every requested key
            for row in run.scan_history(keys=["epoch", k]):
                rows.append({"epoch": row.get("epoch"), k: clean_number(row.get(k))})
    else:
        for row in run.scan_history():
            rows.append(
                {
                    k: (clean_number(v) if k != "epoch" else v)
                    for k, v in row.items()
                    if k == "epoch" or str(k).startswith(("val/", "test/", "train/"))
                }
            )
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows).dropna(subset=["epoch"])
    df["epoch"] = df["epoch"].astype(int)
    return df.groupby("epoch", as_index=False).last().reset_index(drop=True)


def record_from_wandb_run(run) -> RunRecord:
    """A ``wandb.apis.public.Run`` (or :class:`OfflineRun`) → :class:`RunRecord`."""
    config = {k: v for k, v in dict(run.config or {}).items() if not str(k).startswith("_")}
    summary = _summary_dict(run.summary)
    state = str(getattr(run, "state", "") or "")
    status = STATE_TO_STATUS.get(state, "incomplete")
    path = getattr(run, "path", None)
    run_id = (
        "/".join(str(p) for p in path) if isinstance(path, (list, tuple)) else str(getattr(run, "id", ""))
    )
    rec = record_from_config(
        "wandb", run_id, str(getattr(run, "name", "") or run.id), status, config, summary
    )
    rec.group = getattr(run, "group", None) or rec.group
    rec.job_type = getattr(run, "job_type", None) or rec.job_type or "train"
    sweep = getattr(run, "sweep", None)
    rec.sweep = getattr(sweep, "id", None) if sweep is not None else None
    epoch = clean_number(summary.get("epoch"))
    rec.epochs = int(epoch) if epoch is not None else None
    if status == "failed":
        rec.error = f"wandb state {state!r}"
    elif status == "incomplete":
        rec.error = f"wandb state {state!r} (not finished)"
    if not rec.model or not rec.dataset:
        rec.status = "incomplete"
        rec.error = "not a humanparse run: no model.name / data.name in the logged config"
    rec.history_loader = lambda keys, r=run: _history_frame(r, keys)
    return rec


def collect_wandb(
    api,
    project: str | None = None,
    entity: str | None = None,
    filters: dict | None = None,
    runs: Iterable | None = None,
) -> list[RunRecord]:
    """Records of every run of ``entity/project`` (``api`` is ``wandb.Api()`` or :class:`OfflineApi`)."""
    if runs is None:
        path = f"{entity}/{project}" if entity else (project or "")
        runs = api.runs(path, filters=filters or {}) if filters else api.runs(path)
    return [record_from_wandb_run(r) for r in runs]


def default_api(timeout: int = 30):
    """``wandb.Api`` (needs ``wandb login`` / ``WANDB_API_KEY`` and the network)."""
    import wandb

    return wandb.Api(timeout=timeout)
