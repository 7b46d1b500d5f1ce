"""The canonical event schema: every tag unitb writes is spelled here and nowhere else.

Both adapters call these builders, so an mmengine run, a Keras ``fit`` run and a custom TF
loop land in the same tag families (``docs/DESIGN.md``). The reader and ``unitb diff``
use :func:`family_of` to map any tag back to its family.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Dict, List, Mapping, Optional, Tuple

TRAIN = "train"
VAL = "val"
SPLITS = (TRAIN, VAL)

TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
TRAIN_EPOCH = "train/epoch"
GRAD_NORM_GLOBAL = "train/gradient_norm/global"
GRAD_NORM_PRE_CLIP = "train/gradient_norm/pre_clip"
LOSS_SCALE = "train/loss_scale"
TIME_STEP = "train/time/step"
TIME_DATA = "train/time/data"
THROUGHPUT = "train/throughput"
MEMORY_HOST_MB = "train/memory/host_mb"
MEMORY_DEVICE_MB = "train/memory/device_mb"
MODEL_TOTAL_PARAMETERS = "model/total_parameters"
MODEL_TRAINABLE_PARAMETERS = "model/trainable_parameters"
MODEL_SIZE_MB = "model/model_size_mb"
# What the machine did (unitb.life.system_metrics): sampled every ``system_interval`` seconds on a
# background thread, at the step training stands at. CPU percentages are psutil's: the host's of
# all cores (0-100), the process's of one core (above 100 when it uses several).
SYSTEM_CPU_HOST = "system/cpu/host_percent"
SYSTEM_CPU_PROCESS = "system/cpu/process_percent"
SYSTEM_MEMORY_HOST = "system/memory/host_used_mb"
SYSTEM_MEMORY_PROCESS = "system/memory/process_rss_mb"
SYSTEM_DISK_READ = "system/disk/read_mb_per_s"
SYSTEM_DISK_WRITE = "system/disk/write_mb_per_s"
SYSTEM_NETWORK_SENT = "system/network/sent_mb_per_s"
SYSTEM_NETWORK_RECEIVED = "system/network/received_mb_per_s"
SYSTEM_GPU_FIGURES = ("utilization_percent", "memory_used_mb", "memory_total_mb", "power_w", "temperature_c")


def system_gpu(ordinal: int, figure: str) -> str:
    """``system/gpu/{ordinal}/{figure}``: the GPU this process calls ``cuda:{ordinal}``."""
    if figure not in SYSTEM_GPU_FIGURES:
        raise ValueError(f"figure must be one of {SYSTEM_GPU_FIGURES}, got {figure!r}")
    return f"system/gpu/{int(ordinal)}/{figure}"


def system_node(node: int, tag: str) -> str:
    """``system/node{node}/…``: a ``system/*`` figure of one node of a run over several machines
    (node 0 is the chief's). A run on one machine keeps the plain names; a run over several names
    every node, so no figure reads as the whole job's."""
    if not tag.startswith("system/"):
        raise ValueError(f"tag must be a system/* tag, got {tag!r}")
    return f"system/node{int(node)}/{tag[len('system/'):]}"


# Written by a sweep's agent into a trial's run when its pruner stopped it, at that step: the
# HPARAMS table's column that tells a pruned trial (its metric is the value at the prune).
SWEEP_PRUNED_AT_STEP = "sweep/pruned_at_step"
TRAIN_IMAGE = "train/image"
VAL_IMAGE = "val/image"
CONFIG = "config"

# The hparams every entry point writes under the same names (``unitb.write.hparams``), so runs of both
# frameworks line up in the HPARAMS tab; a run carries more (what only its framework knows, the
# user's own), which ``unitb diff`` reports as the run's own.
HPARAM_KEYS: Tuple[str, ...] = ("framework", "model", "optimizer", "learning_rate", "batch_size", "max_steps",
                                "epochs", "amp")

# Names of a step's total loss, in the order that decides when several are present: the first
# one present is ``train/loss``, the others stay components (``unitb.life.train_step``).
TOTAL_LOSS_NAMES: Tuple[str, ...] = ("loss", "total_loss", "total")

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]+")


def sanitize(name: str) -> str:
    """Return a TensorBoard-safe tag fragment.

    Unicode is folded to ASCII where it has an equivalent, each run of characters outside
    ``[A-Za-z0-9_.-/]`` becomes one ``_`` (none at the edge of a path part, so mmpose's
    ``coco/AP (L)`` reads ``coco/AP_L``), repeated/edge slashes are collapsed. Never raises:
    a non-string is converted with ``str`` first, a part left empty, or made of dots alone
    (``..``), becomes ``_``.
    """
    text = name if isinstance(name, str) else str(name)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.encode("ascii", "replace").decode("ascii")  # no ASCII form: "?", made "_" below
    parts = [part for part in text.strip().split("/") if part]  # repeated and edge slashes go
    parts = [_TAG_UNSAFE.sub("\0", part).strip("\0").replace("\0", "_") or "_" for part in parts]
    # A part made of dots alone ("." or "..") would mean something if a tag ever named a file.
    return "/".join("_" if not part.strip(".") else part for part in parts) or "_"


def layer_name(name: str) -> str:
    """Normalise a framework variable name to the shared dotted form.

    ``backbone.layer1.0.conv1.weight`` stays as it is; Keras ``dense/kernel:0`` becomes
    ``dense.kernel``; DDP's ``module.`` prefix is dropped so wrapped and unwrapped runs match.
    """
    text = name if isinstance(name, str) else str(name)
    text = re.sub(r":\d+$", "", text)
    text = text.replace("/", ".")
    if text.startswith("module."):
        text = text[len("module."):]
    return sanitize(text).replace("/", ".")


def loss_component(name: str) -> str:
    """``train/loss/{component}``: mmpose's ``loss_kpt`` -> ``kpt``, Keras' per-output
    ``keypoints_loss`` -> ``keypoints``."""
    part = str(name)
    if part.startswith("loss_"):
        part = part[len("loss_"):]
    elif part.endswith("_loss") and len(part) > len("_loss"):
        part = part[: -len("_loss")]
    return f"{TRAIN_LOSS}/{sanitize(part)}"


def learning_rate(group: object) -> str:
    """``train/learning_rate/{group}``: the group's ``name`` if it has one, else its index."""
    return f"train/learning_rate/{sanitize(str(group))}"


def grad_norm_layer(layer: str) -> str:
    return f"train/gradient_norm/layers/{layer_name(layer)}"


def metric(split: str, name: str) -> str:
    """``train/{metric}`` or ``val/{metric}``; a split prefix already in ``name`` is not doubled.

    mmengine reports ``coco/AP`` and ``PCK``; Keras reports ``val_loss`` and ``mae``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    text = str(name)
    for prefix in (f"{split}/", f"{split}_"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text in ("loss",):
        return f"{split}/loss"
    return f"{split}/{sanitize(text)}"


def anomaly(kind: str) -> str:
    """``train/anomaly/{kind}``: counts of non-finite values found at a step."""
    return f"train/anomaly/{sanitize(kind)}"


def weights_histogram(layer: str) -> str:
    return f"weights/{layer_name(layer)}"


def gradients_histogram(layer: str) -> str:
    return f"gradients/{layer_name(layer)}"


def activations_histogram(layer: str) -> str:
    return f"activations/{layer_name(layer)}"


VAL_FEATURES = "val/features"  # embedding_layer's points in the PROJECTOR (unitb.write.projector), every entry point


def heatmap(split: str) -> str:
    """``train/heatmap`` / ``val/heatmap``: predicted heatmaps over the input crops, beside the image."""
    return f"{TRAIN if split == TRAIN else VAL}/heatmap"


def image(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return TRAIN_IMAGE if split == TRAIN else VAL_IMAGE


def custom_scalars_layout() -> Dict[str, List[Dict[str, object]]]:
    """The one CUSTOM SCALARS layout both adapters write.

    Plain data (category -> charts of tag regexes); the writers turn it into the
    ``custom_scalars`` plugin proto through :func:`unitb.write.protos.custom_scalars_summary`.
    """
    return {
        "unitb": [
            {"title": "loss (train vs val)", "tags": [r"^train/loss$", r"^val/loss$"]},
            {"title": "loss components", "tags": [r"^train/loss/.*"]},
            {"title": "learning rate", "tags": [r"^train/learning_rate/.*"]},
            {"title": "gradient norm", "tags": [r"^train/gradient_norm/(global|pre_clip)$"]},
            {"title": "validation metrics", "tags": [r"^val/(?!loss$|image$).*"]},
        ],
        "speed": [
            {"title": "step time (s)", "tags": [r"^train/time/step$"]},
            {"title": "throughput (samples/s)", "tags": [r"^train/throughput$"]},
        ],
    }


# Families used by the reader and `unitb diff`: (family name, regex, expected kind).
FAMILIES: Tuple[Tuple[str, str, str], ...] = (
    ("train/loss", r"^train/loss$", "scalar"),
    ("train/loss/*", r"^train/loss/.+$", "scalar"),
    ("train/learning_rate/*", r"^train/learning_rate/.+$", "scalar"),
    ("train/gradient_norm/global", r"^train/gradient_norm/global$", "scalar"),
    ("train/gradient_norm/pre_clip", r"^train/gradient_norm/pre_clip$", "scalar"),
    ("train/gradient_norm/layers/*", r"^train/gradient_norm/layers/.+$", "scalar"),
    ("train/anomaly/*", r"^train/anomaly/.+$", "scalar"),
    ("train/epoch", r"^train/epoch$", "scalar"),
    ("train/loss_scale", r"^train/loss_scale$", "scalar"),
    ("train/time/*", r"^train/time/(step|data)$", "scalar"),
    ("train/throughput", r"^train/throughput$", "scalar"),
    ("train/memory/*", r"^train/memory/(host_mb|device_mb)$", "scalar"),
    ("train/image", r"^train/image(/\d+)?$", "image"),
    ("val/image", r"^val/image(/\d+)?$", "image"),
    ("train/heatmap", r"^train/heatmap(/\d+)?$", "image"),
    ("val/heatmap", r"^val/heatmap(/\d+)?$", "image"),
    ("val/loss", r"^val/loss$", "scalar"),
    ("model/*", r"^model/(total_parameters|trainable_parameters|model_size_mb)$", "scalar"),
    ("weights/*", r"^weights/.+$", "histogram"),
    ("gradients/*", r"^gradients/.+$", "histogram"),
    ("activations/*", r"^activations/.+$", "histogram"),
    ("config", r"^config(/text_summary)?$", "text"),
    ("hparams", r"^_hparams_/.+$", "hparams"),
    ("custom_scalars", r"^custom_scalars__config__$", "custom_scalars"),
    ("val/pr/*", r"^val/pr/.+/pr_curves$", "pr_curves"),  # PR curves: keypoints by OKS, boxes by IoU
    ("graph", r"^__graph__$", "graph"),
    ("sweep/pruned_at_step", r"^sweep/pruned_at_step$", "scalar"),
    ("alerts/*", r"^alerts/(nonfinite|diverged|stalled|gpu_memory|user)$", "text"),  # unitb.life.alerts
    ("system/*", r"^system/(node\d+/)?(cpu/(host|process)_percent|memory/(host_used|process_rss)_mb|"
                 r"disk/(read|write)_mb_per_s|network/(sent|received)_mb_per_s|gpu/\d+/(utilization_percent|memory_(used|total)_mb|power_w|"
                 r"temperature_c))$", "scalar"),
    ("train/*", r"^train/.+$", "scalar"),
    ("val/*", r"^val/.+$", "scalar"),
)
_FAMILY_RES = tuple((name, re.compile(rx), kind) for name, rx, kind in FAMILIES)

# Families a run is expected to have whatever the framework (optional ones are compared
# only when both runs have them).
CORE_FAMILIES: Tuple[str, ...] = (
    "train/loss",
    "train/learning_rate/*",
    "train/gradient_norm/global",
    "train/epoch",
    "model/*",
)


def family_of(tag: str) -> Optional[str]:
    """The canonical family of ``tag``, or ``None`` for a tag outside the schema."""
    for name, regex, _kind in _FAMILY_RES:
        if regex.match(tag):
            return name
    return None


def as_given(number: float) -> float:
    """A float as the user wrote it: a value that went through float32 (a Keras optimizer's
    learning rate variable) comes back as its shortest float32 text, 0.003 and not
    0.003000000026077032; any other float is kept as it is."""
    import numpy as np

    single = np.float32(number)
    if not np.isfinite(single) or float(single) != number:
        return number
    return float(str(single))


def hparams_dict(values: Mapping[str, object],
                 warn: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """Every key, as the hparams plugin can show it: booleans, numbers and text as they are,
    numpy/tensor scalars as numbers, anything else (a tuple, a list, a dict) as its text. A
    value of None cannot be shown: it is left out with one warning naming the keys."""
    out: Dict[str, object] = {}
    empty = []
    for key, value in values.items():
        if value is None:
            empty.append(str(key))
        elif isinstance(value, (bool, int, str)):
            out[str(key)] = value
        else:
            try:
                out[str(key)] = as_given(float(value))  # type: ignore[arg-type]  # numpy / tensor scalars too
            except (TypeError, ValueError):
                out[str(key)] = str(value)
    if empty and warn is not None:
        warn(f"hparams with the value None are not shown in the HPARAMS tab: {', '.join(repr(k) for k in empty)}")
    return out
