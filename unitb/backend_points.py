"""Records read back from an event file, in the forms the backends take."""
from __future__ import annotations

import io
from typing import Dict


def hparams_of(content: object) -> Dict[str, object]:
    """The hparams a run was started with, from the hparams plugin's session-start record
    (``{}`` for the plugin's other records)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    if not isinstance(content, (bytes, bytearray)):
        return {}
    data = plugin_data_pb2.HParamsPluginData()
    try:
        data.ParseFromString(bytes(content))
    except Exception:
        return {}
    if not data.HasField("session_start_info"):
        return {}
    out: Dict[str, object] = {}
    for key, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind is not None:
            item = getattr(value, kind)
            # The plugin keeps every number as a double: a whole number is shown as one (2, not 2.0).
            out[key] = int(item) if isinstance(item, float) and item.is_integer() and abs(item) < 2 ** 53 else item
    return out


def image_of(value: Dict[str, object]):
    """The first picture of an image record as a PIL image."""
    from PIL import Image

    return Image.open(io.BytesIO(value["png"][0])).convert("RGB")  # type: ignore[index]
