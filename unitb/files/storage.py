"""Where a run lives when its logdir is a URL (``s3://bucket/runs/exp``, ``gs://…``, any
fsspec URL): the file system behind it, the local spool folder its writers write into,
and small path helpers shared by the mirror, the run opener and the reader.

TensorBoard's writers (``SummaryWriter``, ``tf.summary``) cannot write to an object store
here (TensorFlow's gfile has no ``s3`` scheme since tensorflow-io took it, and no store
supports appending to an object). So a URL run is written locally, as any run is, into a
spool folder, and :mod:`unitb.store.mirror` copies it to the store on a background thread.
fsspec is imported only when a URL is used.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Tuple

from unitb.files.names import PULL_PREFIX

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$")
SPOOL_ENV = "UNITB_SPOOL"


def is_url(path: object) -> bool:
    """True for ``scheme://…`` other than ``file://`` (a local path stays a path)."""
    if not isinstance(path, str):
        return False
    match = _URL.match(path)
    return match is not None and match.group("scheme").lower() not in ("file", "local")


def strip_file_scheme(path: str) -> str:
    match = _URL.match(path) if isinstance(path, str) else None
    if match and match.group("scheme").lower() in ("file", "local"):
        return match.group("rest")
    return path


def normalize_url(url: str) -> str:
    """``s3://b/runs/exp/`` -> ``s3://b/runs/exp`` (no trailing slash, no doubled ones)."""
    match = _URL.match(url)
    if not match:
        return url
    rest = re.sub(r"/+", "/", match.group("rest")).rstrip("/")
    return f"{match.group('scheme').lower()}://{rest}"


def join(url: str, *parts: str) -> str:
    out = url.rstrip("/")
    for part in parts:
        part = part.replace(os.sep, "/").strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def check_storage_options(options: object, name: str = "storage_options") -> Dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{name} must be a dict of fsspec storage options or None, got {options!r}")
    return dict(options)


def check_location(logdir: object, options: Optional[Mapping[str, Any]], owner: str = "unitb") -> str:
    """A logdir as adapters keep it: a path (``file://`` stripped) or a checked, normalised URL.
    Raises ``ValueError`` at construction for what no writer could use: a URL no installed
    file system serves, or a bucket the store says does not exist (:func:`check_bucket`)."""
    if not isinstance(logdir, (str, os.PathLike)):
        raise ValueError(f"{owner}: logdir must be a path or a URL, got {logdir!r}")
    path = strip_file_scheme(os.fspath(logdir))
    if not is_url(path):
        return path
    url = check_url(path, options or {}, owner)
    check_bucket(url, options, owner)
    return url


def check_url(url: str, options: Mapping[str, Any], owner: str = "unitb") -> str:
    """Fail at construction, not mid-run, when no fsspec file system serves the URL's scheme
    (the message says which package to install). Nothing is sent over the network here."""
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with the s3/gcs extras
        raise ValueError(f"{owner}: a logdir URL ({url}) needs fsspec: pip install 'unitb[s3]' "
                         "(or [gcs], or the fsspec package for your store)") from exc
    scheme = _URL.match(url).group("scheme").lower()  # type: ignore[union-attr]
    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"{owner}: cannot use {url}: {exc}") from exc
    return normalize_url(url)


def filesystem(url: str, options: Optional[Mapping[str, Any]] = None):
    """``(fs, path)`` for a URL; ``options`` are fsspec storage options (``endpoint_url``,
    ``key``, ``secret``, ``token``, ``client_kwargs`` …). A ``backend`` key (mmengine's
    ``backend_args`` style) is dropped: the URL's scheme picks the back-end."""
    import fsspec

    kwargs = {k: v for k, v in (options or {}).items() if k != "backend"}
    fs, path = fsspec.core.url_to_fs(url, **kwargs)
    return fs, path.rstrip("/")


def spool_root(spool_dir: Optional[str] = None) -> str:
    """Where URL runs are spooled: ``spool_dir``, else ``$UNITB_SPOOL``, else
    ``~/.cache/unitb/spool``."""
    base = spool_dir or os.environ.get(SPOOL_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "unitb", "spool")
    return os.path.abspath(base)


def spool_path(url: str, spool_dir: Optional[str] = None) -> str:
    """The local folder that stands for ``url``: the same on every start on this machine, so
    a restarted run finds what it wrote before (and uploads what was not uploaded yet)."""
    url = normalize_url(url)
    match = _URL.match(url)
    scheme, rest = match.group("scheme"), match.group("rest")  # type: ignore[union-attr]
    safe = [p for p in rest.split("/") if p not in ("", ".", "..")]
    if not safe:
        safe = [hashlib.sha1(url.encode()).hexdigest()[:12]]
    return os.path.join(spool_root(spool_dir), scheme, *safe)


def _fs_for(url: str, options: Optional[Mapping[str, Any]] = None):
    fs, path = filesystem(url, options)
    match = _URL.match(url)
    return fs, path, (f"{match.group('scheme').lower()}://" if match else "")


def listdir(url: str, options: Optional[Mapping[str, Any]] = None) -> List[Tuple[str, str]]:
    """``(name, kind)`` directly inside a URL (kind ``file`` or ``directory``), fresh from the
    store; [] when absent."""
    fs, path, _prefix = _fs_for(url, options)
    _forget_cached(fs, path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return [(entry["name"].rstrip("/").rsplit("/", 1)[-1], "directory" if entry.get("type") == "directory" else "file")
            for entry in entries]


def _forget_cached(fs, path: Optional[str] = None) -> None:
    """A listing sees the store as it is now, not what fsspec cached (of ``path``, or of all)."""
    try:
        fs.invalidate_cache(path) if path is not None else fs.invalidate_cache()
    except Exception:
        pass


def walk_files(url: str, options: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Every file below a URL, as URLs."""
    fs, path, prefix = _fs_for(url, options)
    return [f"{prefix}{path}/{rel}" for rel in sorted(listing(fs, path))]


def open_binary(path: str, options: Optional[Mapping[str, Any]] = None) -> BinaryIO:
    """A local file, or a URL opened for streaming reads in large blocks."""
    if not is_url(path):
        return open(path, "rb")
    fs, inner, _prefix = _fs_for(path, options)
    return fs.open(inner, "rb", block_size=8 << 20)


def fetch_file(fs, remote: str, target: str) -> None:
    """Download ``remote`` to ``target`` under a fresh temporary name first, so no reader
    (TensorBoard, a resume) ever sees half a file. The temporary file is created here
    (never opened through a name someone may have placed, such as a symlink), and the final
    rename replaces a link at ``target`` rather than writing through it. ``target`` must come
    from :func:`unitb.files.safe_paths.local_target`."""
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=PULL_PREFIX, suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        fs.get_file(remote, tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def listing(fs, root: str) -> Dict[str, int]:
    """``{path below root: size}`` of every object below ``root``, fresh from the store."""
    return {rel: size for rel, (size, _digest) in signatures(fs, root).items()}


def objects(fs, root: str) -> Dict[str, Dict[str, Any]]:
    """``{path below root: the store's details}`` of every object below ``root``, fresh from the
    store (one listing, nothing fsspec cached)."""
    _forget_cached(fs)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    out = {}
    for name, info in found.items():
        name = name.rstrip("/")
        if name.startswith(root + "/"):
            out[name[len(root) + 1:]] = info
    return out


def signatures(fs, root: str) -> Dict[str, Tuple[int, Optional[str]]]:
    """``{path below root: (size, MD5 hex or None)}`` of every object below ``root``, fresh
    from the store. The MD5 is the object's ETag where the store makes it the content's MD5
    (S3 and its kin for a single-part upload; GCS reports ``md5Hash``); None elsewhere."""
    return {rel: (int(info.get("size") or 0), _content_md5(info)) for rel, info in objects(fs, root).items()}


def _content_md5(info: Mapping[str, Any]) -> Optional[str]:
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{32}", etag):  # a multipart ETag ("…-3") is not the content's MD5
        return etag
    md5 = info.get("md5Hash")
    if isinstance(md5, str):
        try:
            return base64.b64decode(md5).hex()
        except ValueError:
            return None
    return None


BUCKET_SCHEMES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"}
BUCKET_CHECK_SECS = 5.0  # a store that has not answered by then is not judged at construction


def check_bucket(url: str, options: Optional[Mapping[str, Any]], owner: str = "unitb") -> None:
    """Raise ``ValueError`` when the store answers that ``url``'s bucket does not exist: every
    upload would fail the same way, so say it once, at construction, naming the bucket. A
    store that does not answer within :data:`BUCKET_CHECK_SECS` (or refuses to say) is not
    judged here: the run goes on and uploads start when it answers."""
    import threading

    scheme = url.split("://", 1)[0].lower()
    if scheme not in BUCKET_SCHEMES:
        return
    fs, path = filesystem(url, options)
    bucket = path.split("/", 1)[0]
    answer: Dict[str, BaseException] = {}

    def ask() -> None:
        try:
            fs.info(bucket)
        except BaseException as exc:  # noqa: BLE001 - only FileNotFoundError is judged below
            answer["error"] = exc

    asking = threading.Thread(target=ask, name="unitb-bucket-check", daemon=True)
    asking.start()
    asking.join(BUCKET_CHECK_SECS)
    if isinstance(answer.get("error"), FileNotFoundError):
        raise ValueError(f"{owner}: the bucket {bucket!r} of {url} does not exist in the store; create it, or fix "
                         "the URL or the store's endpoint")


_SECRET = re.compile(r"""(?P<name>['"]?\b(?:\w*_)?(?:secret|secret_key|password|passwd|token|key|access_key|"""
                     r"""access_key_id|key_id|api_key|credentials?)\b['"]?\s*[=:]\s*)"""
                     r"""(?P<value>'[^'\n]*'|"[^"\n]*"|[^\s,)}\]]+)""", re.IGNORECASE)


def redact_secrets(text: str) -> str:
    """The config text a run shows in TensorBoard's TEXT tab, with credential-like values
    (``key=``, ``secret=``, ``token=``, ``password=`` … as mmengine configs carry them in
    ``backend_args``) replaced by ``'***'``: an event file in a bucket is no place for them."""
    return _SECRET.sub(lambda m: m.group("name") + "'***'", text)
