"""safetensors.py: read and write the safetensors format without the `safetensors`
package (not packaged for Debian 12): json + numpy only.

Layout (docs/formats.md, "safetensors"): 8-byte little-endian header length N, N bytes
of UTF-8 JSON ``{"__metadata__": {str: str}, name: {"dtype", "shape",
"data_offsets": [begin, end]}, ...}`` padded with spaces, then the row-major
little-endian data; offsets are relative to the data, and the tensors cover it exactly
(no gaps, no overlaps, nothing after the last one).

The reader checks all of that and raises SafetensorsError naming the file and the
tensor. The writer produces the canonical form bgfm writes (metadata keys sorted,
tensors sorted by name, compact JSON, the escapes of bgfm's json_write_str), so an
unchanged model round-trips to the same bytes. Not a model loader (model.py).
"""
import json
import os

import numpy as np

MAX_HEADER = 100 << 20  # the safetensors limit on the header size

DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "BOOL": "?",
}


class SafetensorsError(ValueError):
    """A file that is not valid safetensors (the message names the file and the tensor)."""


def _int(v, hi):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= hi


def read_header(path):
    """(header dict without __metadata__, metadata dict, data offset, data length)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors file "
                                   "(an 8-byte header length comes first); truncated")
        n = int.from_bytes(f.read(8), "little")
        if n > size - 8:
            raise SafetensorsError(f"{path}: header length {n} is larger than the file "
                                   f"({size} bytes): truncated, or not a safetensors file")
        if n < 2 or n > MAX_HEADER:
            raise SafetensorsError(f"{path}: header length {n} (need 2 .. {MAX_HEADER})")
        raw = f.read(n)
    def no_repeats(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise SafetensorsError(f"{path}: {k} appears twice in the header")
            seen.add(k)
        return dict(pairs)
    try:
        hdr = json.loads(raw.decode("utf-8"), object_pairs_hook=no_repeats)
    except (UnicodeDecodeError, json.JSONDecodeError) as ex:
        raise SafetensorsError(f"{path}: the header is not UTF-8 JSON ({ex})") from None
    if not isinstance(hdr, dict):
        raise SafetensorsError(f"{path}: the header is not a JSON object")
    meta = hdr.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    data_len = size - 8 - n
    _check_entries(path, hdr, data_len)
    return hdr, meta, 8 + n, data_len


def _check_entries(path, hdr, data_len):
    spans = []
    for name, e in hdr.items():
        if not isinstance(e, dict) or not isinstance(e.get("dtype"), str) \
                or not isinstance(e.get("shape"), list) or not isinstance(e.get("data_offsets"), list):
            raise SafetensorsError(f"{path}: tensor {name}: the entry needs dtype, shape and "
                                   "data_offsets")
        if e["dtype"] not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name}: dtype {e['dtype']} is not one this "
                                   f"reader knows ({', '.join(DTYPES)})")
        if not all(_int(s, 1 << 40) for s in e["shape"]):
            raise SafetensorsError(f"{path}: tensor {name}: shape entries must be integers >= 0")
        off = e["data_offsets"]
        if len(off) != 2 or not all(_int(o, 1 << 53) for o in off) or off[0] > off[1]:
            raise SafetensorsError(f"{path}: tensor {name}: data_offsets must be [begin, end] "
                                   "integers with 0 <= begin <= end")
        need = int(np.prod(e["shape"], dtype=np.int64)) * np.dtype(DTYPES[e["dtype"]]).itemsize
        if off[1] - off[0] != need:
            raise SafetensorsError(f"{path}: tensor {name}: data_offsets {off} hold "
                                   f"{off[1] - off[0]} bytes, its shape needs {need}")
        if off[1] > data_len:
            raise SafetensorsError(f"{path}: tensor {name}: data_offsets end at {off[1]}, past "
                                   f"the end of the data ({data_len} bytes): truncated")
        spans.append((off[0], off[1], name))
    at, prev = 0, None
    for b, e, name in sorted(spans):
        if b < at:
            raise SafetensorsError(f"{path}: tensors {prev} and {name} overlap")
        if b > at:
            raise SafetensorsError(f"{path}: {b - at} bytes before tensor {name} belong to no "
                                   "tensor (a gap in the data)")
        at, prev = e, name
    if at != data_len:
        raise SafetensorsError(f"{path}: the tensors' data ends at byte {at} but {data_len} "
                               "bytes follow the header (trailing bytes)")


def load_file(path):
    """(dict name -> numpy array in header order, metadata dict); arrays own their data."""
    hdr, meta, start, _ = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, e in hdr.items():
            b, end = e["data_offsets"]
            f.seek(start + b)
            buf = f.read(end - b)
            if len(buf) != end - b:
                raise SafetensorsError(f"{path}: tensor {name}: the file ends early")
            a = np.frombuffer(buf, dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
            out[name] = a.astype(a.dtype.newbyteorder("="), copy=True)
    return out, meta


def _jstr(s):
    """A JSON string literal exactly as bgfm's json_write_str writes it."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def header_bytes(tensors, metadata):
    """The canonical padded header of {name: array} (float32 arrays only) and metadata."""
    parts = ["{" + _jstr("__metadata__") + ":{"
             + ",".join(_jstr(k) + ":" + _jstr(metadata[k]) for k in sorted(metadata)) + "}"]
    off = 0
    for name in sorted(tensors):
        a = tensors[name]
        n = a.size * 4
        parts.append(_jstr(name) + ':{"dtype":"F32","shape":[' + ",".join(str(int(s)) for s in a.shape)
                     + '],"data_offsets":[%d,%d]}' % (off, off + n))
        off += n
    h = (",".join(parts) + "}").encode("utf-8")
    return h + b" " * (-len(h) % 8)


def save_file(tensors, path, metadata=None):
    """Write {name: float32 array-like} and metadata {str: str} to path (via a temporary
    name, fsync, rename): complete or absent."""
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata must map str to str (key {k!r})")
    arrs = {}
    for name, a in tensors.items():
        a = np.asarray(a)
        if a.dtype != np.float32:
            raise TypeError(f"tensor {name} is {a.dtype}; bgfm reads float32 only")
        arrs[name] = np.ascontiguousarray(a, dtype="<f4")
    h = header_bytes(arrs, metadata)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            for name in sorted(arrs):
                f.write(arrs[name].tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    d = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(d)
    finally:
        os.close(d)
