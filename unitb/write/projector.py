"""Embeddings for TensorBoard's PROJECTOR tab, written the same way from both frameworks.

``log_embedding(tag, features, metadata=None, images=None)`` (every entry point, through
:mod:`unitb.life.own_values`) writes, below the run folder::

    projector/<tag>/<step>/tensors.tsv     N x D features, tab-separated
    projector/<tag>/<step>/metadata.tsv    one label per point (several columns: a header row first)
    projector/<tag>/<step>/sprite.png      the points' images in one grid (when given)
    projector_config.pbtxt                 every embedding of the run, paths relative to it

TensorBoard's projector reads ``projector_config.pbtxt`` in each run folder; a TSV tensor needs
no TensorFlow checkpoint, so a PyTorch run and a Keras run write identical files for identical
inputs. The tag becomes a folder name only after sanitising (:func:`unitb.schema.sanitize`, with
``/`` made ``_``) and the check of :func:`unitb.files.safe_paths.plain_name`.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence, Union

import numpy as np

from unitb import schema
from unitb.write import render
from unitb.files import safe_paths

CONFIG = "projector_config.pbtxt"
SPRITE_MAX = 8192  # TensorBoard's limit for a sprite's side, in pixels
Metadata = Union[Sequence[object], Mapping[str, Sequence[object]], None]


class ProjectorError(ValueError):
    """Features, labels or images the projector cannot show; the message says why."""


def folder_name(tag: str) -> str:
    name = schema.sanitize(tag).replace("/", "_")
    if not safe_paths.plain_name(name):
        raise ProjectorError(f"tag {tag!r} cannot name a folder")
    return name


def check(features: object, metadata: Metadata = None, images: Any = None) -> np.ndarray:
    """The features as an N x D float32 array, after checking the labels and images match."""
    array = np.asarray(features, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ProjectorError(f"features must be N x D with N, D >= 1, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ProjectorError("features hold NaN or Inf")
    count = array.shape[0]
    columns = metadata.values() if isinstance(metadata, Mapping) else ([metadata] if metadata is not None else [])
    for column in columns:
        if len(column) != count:
            raise ProjectorError(f"metadata has {len(column)} rows for {count} points")
    if images is not None and len(images) != count:
        raise ProjectorError(f"images has {len(images)} entries for {count} points")
    return array


def _metadata_tsv(metadata: Metadata) -> str:
    def clean(value: object) -> str:
        return str(value).replace("\t", " ").replace("\n", " ")
    if isinstance(metadata, Mapping) and len(metadata) == 1:
        # TensorBoard reads one column as labels without a header (a header row is refused there).
        metadata = list(next(iter(metadata.values())))
    if isinstance(metadata, Mapping):  # several columns: a header row first
        names = list(metadata)
        rows = zip(*(metadata[name] for name in names))
        return "\t".join(map(clean, names)) + "\n" + "".join("\t".join(map(clean, row)) + "\n" for row in rows)
    return "".join(clean(label) + "\n" for label in metadata or [])


def _sprite(images: Any, count: int) -> tuple:
    """All images as thumbnails in one square grid no larger than TensorBoard allows."""
    from PIL import Image

    frames = [render.to_rgb(render.to_uint8(render.to_hwc(np.asarray(image)))) for image in list(images)[:count]]
    side = math.ceil(math.sqrt(count))
    height, width = frames[0].shape[:2]
    scale = min(1.0, SPRITE_MAX / (side * max(height, width)))
    cell = (max(1, int(width * scale)), max(1, int(height * scale)))
    sheet = Image.new("RGB", (side * cell[0], side * cell[1]))
    for index, frame in enumerate(frames):
        thumb = Image.fromarray(frame).resize(cell)
        sheet.paste(thumb, ((index % side) * cell[0], (index // side) * cell[1]))
    return sheet, cell


def write_embedding(run_dir: str, tag: str, step: int, features: np.ndarray, metadata: Metadata = None,
                    images: Any = None) -> str:
    """Write one embedding (see the module docstring) and list it in the run's projector
    config; returns its folder. Call it from one thread per run (unitb's writer thread)."""
    from google.protobuf import text_format
    from tensorboard.plugins.projector import projector_config_pb2

    rel = f"projector/{folder_name(tag)}/{int(step):08d}"
    folder = os.path.join(run_dir, *rel.split("/"))
    os.makedirs(folder, exist_ok=True)
    np.savetxt(os.path.join(folder, "tensors.tsv"), features, delimiter="\t", fmt="%.7g")
    config_path = os.path.join(run_dir, CONFIG)
    config = projector_config_pb2.ProjectorConfig()
    if os.path.exists(config_path):
        with open(config_path) as handle:
            text_format.Parse(handle.read(), config)
    name = f"{tag} (step {int(step)})"
    kept = [e for e in config.embeddings if e.tensor_name != name]
    del config.embeddings[:]
    config.embeddings.extend(kept)
    entry = config.embeddings.add(tensor_name=name, tensor_path=f"{rel}/tensors.tsv")
    entry.tensor_shape.extend(features.shape)
    if metadata is not None:
        with open(os.path.join(folder, "metadata.tsv"), "w") as handle:
            handle.write(_metadata_tsv(metadata))
        entry.metadata_path = f"{rel}/metadata.tsv"
    if images is not None:
        sheet, cell = _sprite(images, features.shape[0])
        sheet.save(os.path.join(folder, "sprite.png"))
        entry.sprite.image_path = f"{rel}/sprite.png"
        entry.sprite.single_image_dim.extend(cell)
    tmp = config_path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text_format.MessageToString(config))
    os.replace(tmp, config_path)
    return folder
