"""Minimal GGUF v3 writer and reader for libvqgan model files.

Our own small implementation of the container described in
docs/model-format.md: little-endian, typed key/values, tensors in f32, f16 or
bf16, data aligned to ``general.alignment`` (32 by default), dims stored
innermost first (the reverse of numpy's shape).

Writing::

    w = GGUFWriter()
    w.add_string("general.architecture", "vqgan")
    w.add_u32("vqgan.format_version", 1)
    w.add_tensor("encoder.conv_in.weight", array, "f16")
    w.write("model.gguf")

Reading::

    g = read_gguf("model.gguf")          # parses and checks the container
    g.kv["vqgan.first_stage.ch"].value   # -> 128
    g.tensor("encoder.conv_in.weight")   # -> numpy float32 array

The module also exposes the low-level pieces (``encode_kv``,
``encode_tensor_info``, ``serialize``) so that tests can build deliberately
broken files, and the reader records the byte position of every field so
that a file can be patched in place.
"""

import struct
import sys
from collections import OrderedDict

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# Value types (GGUF numbering).
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY, \
    T_U64, T_I64, T_F64 = range(13)

VALUE_TYPE_NAMES = {
    T_U8: "u8", T_I8: "i8", T_U16: "u16", T_I16: "i16", T_U32: "u32",
    T_I32: "i32", T_F32: "f32", T_BOOL: "bool", T_STRING: "string",
    T_ARRAY: "array", T_U64: "u64", T_I64: "i64", T_F64: "f64",
}

# struct format of every fixed-size scalar value type.
_SCALAR_FMT = {
    T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I",
    T_I32: "<i", T_F32: "<f", T_BOOL: "<B", T_U64: "<Q", T_I64: "<q",
    T_F64: "<d",
}

# Tensor types.
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
TENSOR_TYPES = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16}
TENSOR_TYPE_NAMES = {v: k for k, v in TENSOR_TYPES.items()}
TENSOR_ELEM_SIZE = {GGML_F32: 4, GGML_F16: 2, GGML_BF16: 2}

# Limits the libvqgan loader enforces (docs/model-format.md).
MAX_COUNT = 65536            # tensor_count, kv_count
MAX_NAME = 256               # key and tensor name length
MAX_STRING = 1 << 20         # string value length
MAX_ARRAY = 1 << 20          # array element count
MAX_DIMS = 4
MAX_ELEMENTS = 1 << 31       # product of a tensor's dims
MAX_ALIGNMENT = 4096


class GGUFError(Exception):
    """A malformed or unsupported GGUF file."""


# ---------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------

def f32_to_bf16_bits(a):
    """Round float32 values to bfloat16 (nearest, ties to even).

    Returns a uint16 array with the bf16 bit patterns. NaNs stay NaN (quiet).
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32).astype(np.uint64)
    rounding = np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))
    out = ((bits + rounding) >> np.uint64(16)).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        out[nan] = ((bits[nan] >> np.uint64(16)).astype(np.uint16)
                    | np.uint16(0x0040))
    return out


def bf16_bits_to_f32(b):
    b = np.ascontiguousarray(b, dtype=np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def tensor_bytes(array, ttype):
    """Serialise a numpy array as tensor data of GGUF type ``ttype``."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    if ttype == GGML_F32:
        return a.astype("<f4").tobytes()
    if ttype == GGML_F16:
        return a.astype("<f2").tobytes()
    if ttype == GGML_BF16:
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    raise GGUFError("unsupported tensor type %r" % (ttype,))


def decode_tensor(raw, ttype, shape):
    """Decode tensor data bytes to a float32 numpy array of ``shape``."""
    if ttype == GGML_F32:
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif ttype == GGML_F16:
        a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif ttype == GGML_BF16:
        a = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
    else:
        raise GGUFError("unsupported tensor type %r" % (ttype,))
    return a.reshape(shape)


def align_up(n, alignment):
    return (n + alignment - 1) // alignment * alignment


# ---------------------------------------------------------------------------
# Low-level encoding
# ---------------------------------------------------------------------------

def _as_bytes(s):
    return s if isinstance(s, (bytes, bytearray)) else str(s).encode("utf-8")


def encode_string(s):
    b = _as_bytes(s)
    return struct.pack("<Q", len(b)) + b


def encode_scalar(vtype, value):
    if vtype == T_STRING:
        return encode_string(value)
    if vtype == T_BOOL:
        return struct.pack("<B", 1 if value else 0)
    fmt = _SCALAR_FMT.get(vtype)
    if fmt is None:
        raise GGUFError("cannot encode value type %r as a scalar" % (vtype,))
    return struct.pack(fmt, value)


def encode_value(vtype, value, elem_type=None):
    if vtype == T_ARRAY:
        if elem_type is None or elem_type == T_ARRAY:
            raise GGUFError("array needs a non-array element type")
        out = [struct.pack("<IQ", elem_type, len(value))]
        out.extend(encode_scalar(elem_type, v) for v in value)
        return b"".join(out)
    return encode_scalar(vtype, value)


def encode_kv(key, vtype, value, elem_type=None):
    """One key/value record: key string, u32 value type, value."""
    return (encode_string(key) + struct.pack("<I", vtype)
            + encode_value(vtype, value, elem_type))


def encode_tensor_info(name, dims, ttype, offset):
    """One tensor info record; ``dims`` innermost first."""
    return (encode_string(name) + struct.pack("<I", len(dims))
            + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ttype, offset))


def serialize(kvs, infos, data, alignment=DEFAULT_ALIGNMENT, magic=GGUF_MAGIC,
              version=GGUF_VERSION, tensor_count=None, kv_count=None):
    """Assemble a file from raw parts, without any checking.

    kvs:   list of (key, vtype, value, elem_type) or pre-encoded bytes
    infos: list of (name, dims_innermost_first, ttype, offset) or bytes
    data:  the tensor data blob (offsets are relative to its start)
    The header is padded to ``alignment`` before the data.
    """
    parts = [magic, struct.pack("<I", version),
             struct.pack("<Q", len(infos) if tensor_count is None
                         else tensor_count),
             struct.pack("<Q", len(kvs) if kv_count is None else kv_count)]
    for kv in kvs:
        parts.append(kv if isinstance(kv, (bytes, bytearray))
                     else encode_kv(*kv))
    for ti in infos:
        parts.append(ti if isinstance(ti, (bytes, bytearray))
                     else encode_tensor_info(*ti))
    head = b"".join(parts)
    pad = align_up(len(head), alignment) - len(head) if alignment > 0 else 0
    return head + b"\0" * pad + bytes(data)


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------

class GGUFWriter:
    """Collects key/values and tensors, then writes one GGUF v3 file.

    Keys keep their insertion order. ``general.alignment`` is written with
    the writer's alignment unless the caller adds it explicitly.
    """

    def __init__(self, alignment=DEFAULT_ALIGNMENT):
        if alignment <= 0 or alignment & (alignment - 1) \
                or alignment > MAX_ALIGNMENT:
            raise GGUFError("alignment must be a power of two <= %d"
                            % MAX_ALIGNMENT)
        self.alignment = alignment
        self.kvs = OrderedDict()     # key -> (vtype, value, elem_type)
        self.tensors = []            # (name, array float32, ttype)
        self._names = set()

    # -- key/values --------------------------------------------------------
    def add_kv(self, key, vtype, value, elem_type=None):
        if not key or len(_as_bytes(key)) > MAX_NAME:
            raise GGUFError("key length must be 1..%d: %r" % (MAX_NAME, key))
        if key in self.kvs:
            raise GGUFError("duplicate key %r" % key)
        if vtype not in VALUE_TYPE_NAMES:
            raise GGUFError("unknown value type %r for key %r" % (vtype, key))
        if vtype == T_ARRAY:
            if elem_type is None or elem_type == T_ARRAY \
                    or elem_type not in VALUE_TYPE_NAMES:
                raise GGUFError("bad array element type for key %r" % key)
            value = list(value)
        if key == "general.alignment":
            if vtype != T_U32 or value != self.alignment:
                raise GGUFError("general.alignment must be the writer's "
                                "alignment (u32 %d)" % self.alignment)
        self.kvs[key] = (vtype, value, elem_type)

    def add_u8(self, key, v): self.add_kv(key, T_U8, int(v))
    def add_i32(self, key, v): self.add_kv(key, T_I32, int(v))
    def add_u32(self, key, v):
        v = int(v)
        if not 0 <= v < 1 << 32:
            raise GGUFError("value %d for key %r does not fit u32" % (v, key))
        self.add_kv(key, T_U32, v)
    def add_u64(self, key, v): self.add_kv(key, T_U64, int(v))
    def add_i64(self, key, v): self.add_kv(key, T_I64, int(v))
    def add_f32(self, key, v): self.add_kv(key, T_F32, float(v))
    def add_f64(self, key, v): self.add_kv(key, T_F64, float(v))
    def add_bool(self, key, v): self.add_kv(key, T_BOOL, bool(v))
    def add_string(self, key, v): self.add_kv(key, T_STRING, str(v))

    def add_array(self, key, elem_type, values):
        self.add_kv(key, T_ARRAY, values, elem_type)

    def add_u32_array(self, key, values):
        values = [int(v) for v in values]
        for v in values:
            if not 0 <= v < 1 << 32:
                raise GGUFError("value %d in %r does not fit u32" % (v, key))
        self.add_array(key, T_U32, values)

    def add_i32_array(self, key, values):
        self.add_array(key, T_I32, [int(v) for v in values])

    def add_f32_array(self, key, values):
        self.add_array(key, T_F32, [float(v) for v in values])

    def add_string_array(self, key, values):
        self.add_array(key, T_STRING, [str(v) for v in values])

    # -- tensors -----------------------------------------------------------
    def add_tensor(self, name, array, dtype="f32"):
        """Add a tensor; ``dtype`` is "f32", "f16", "bf16" or a type id."""
        ttype = TENSOR_TYPES.get(dtype, dtype)
        if ttype not in TENSOR_ELEM_SIZE:
            raise GGUFError("unsupported tensor dtype %r" % (dtype,))
        if not name or len(_as_bytes(name)) > MAX_NAME:
            raise GGUFError("tensor name length must be 1..%d: %r"
                            % (MAX_NAME, name))
        if name in self._names:
            raise GGUFError("duplicate tensor name %r" % name)
        a = np.ascontiguousarray(array, dtype=np.float32)
        if not 1 <= a.ndim <= MAX_DIMS:
            raise GGUFError("tensor %r has %d dims (1..%d supported)"
                            % (name, a.ndim, MAX_DIMS))
        if a.size == 0 or a.size > MAX_ELEMENTS:
            raise GGUFError("tensor %r has %d elements" % (name, a.size))
        self._names.add(name)
        self.tensors.append((name, a, ttype))

    # -- output ------------------------------------------------------------
    def _kv_list(self):
        kvs = list(self.kvs.items())
        if "general.alignment" not in self.kvs:
            # after the general.* keys already present
            pos = 0
            while pos < len(kvs) and kvs[pos][0].startswith("general."):
                pos += 1
            kvs.insert(pos, ("general.alignment",
                             (T_U32, self.alignment, None)))
        return [(k, t, v, e) for k, (t, v, e) in kvs]

    def _layout(self):
        """The tensor records (offsets from the data's start) and the data's size."""
        infos, offset = [], 0
        for name, a, ttype in self.tensors:
            infos.append((name, [int(d) for d in reversed(a.shape)], ttype, offset))
            offset += align_up(a.size * TENSOR_ELEM_SIZE[ttype], self.alignment)
        return infos, offset

    def _padded(self, a, ttype):
        raw = tensor_bytes(a, ttype)
        return raw + b"\0" * (align_up(len(raw), self.alignment) - len(raw))

    def to_bytes(self):
        infos, _ = self._layout()
        data = b"".join(self._padded(a, ttype) for _, a, ttype in self.tensors)
        return serialize(self._kv_list(), infos, data, alignment=self.alignment)

    def write(self, path, progress=None):
        """Writes the file tensor by tensor (the bytes of to_bytes(), without
        holding them: a converted model is written with one tensor's bytes
        in memory at a time). progress(tensors done, tensors, bytes done,
        bytes) is called after each tensor. Returns the file's size."""
        infos, size = self._layout()
        head = serialize(self._kv_list(), infos, b"", alignment=self.alignment)
        total, done = len(head) + size, len(head)
        with open(path, "wb") as f:
            f.write(head)
            for i, (_, a, ttype) in enumerate(self.tensors):
                done += f.write(self._padded(a, ttype))
                if progress:
                    progress(i + 1, len(self.tensors), done, total)
        return total

    def tensor_data_bytes(self):
        return sum(a.size * TENSOR_ELEM_SIZE[t] for _, a, t in self.tensors)


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------

class KV:
    """A parsed key/value. ``pos`` is the byte offset of the key record,
    ``type_pos`` of its u32 value type, ``value_pos`` of the value."""

    __slots__ = ("key", "type", "value", "elem_type", "pos", "type_pos",
                 "value_pos", "end", "elem_pos")

    def __repr__(self):
        return "KV(%r, %s, %r)" % (self.key, VALUE_TYPE_NAMES.get(
            self.type, self.type), self.value)


class TensorInfo:
    """A parsed tensor info. ``dims`` innermost first, ``shape`` numpy
    order. ``pos`` is the byte offset of the record, ``ndims_pos``,
    ``dims_pos``, ``type_pos``, ``offset_pos`` of its fields."""

    __slots__ = ("name", "dims", "type", "offset", "pos", "ndims_pos",
                 "dims_pos", "type_pos", "offset_pos", "end")

    @property
    def shape(self):
        return tuple(reversed(self.dims))

    @property
    def n_elements(self):
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def nbytes(self):
        return self.n_elements * TENSOR_ELEM_SIZE.get(self.type, 0)

    def __repr__(self):
        return "TensorInfo(%r, shape=%r, %s, offset=%d)" % (
            self.name, self.shape, TENSOR_TYPE_NAMES.get(self.type,
                                                         self.type),
            self.offset)


class GGUFFile:
    def __init__(self, data):
        self.data = data
        self.version = None
        self.tensor_count = None
        self.kv_count = None
        self.kv = OrderedDict()
        self.tensors = []
        self.by_name = {}
        self.alignment = DEFAULT_ALIGNMENT
        self.header_end = None
        self.data_start = None

    def value(self, key, default=None):
        kv = self.kv.get(key)
        return default if kv is None else kv.value

    def raw_tensor(self, name):
        ti = self.by_name[name]
        start = self.data_start + ti.offset
        return self.data[start:start + ti.nbytes]

    def tensor(self, name):
        """The tensor's values as a float32 numpy array (numpy shape)."""
        ti = self.by_name[name]
        return decode_tensor(self.raw_tensor(name), ti.type, ti.shape)


class _Cursor:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n, what):
        if n < 0 or self.pos + n > len(self.data):
            raise GGUFError("truncated: %s at byte %d needs %d bytes, file "
                            "has %d" % (what, self.pos, n, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt, what):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what, limit):
        n = self.unpack("<Q", what + " length")
        if n > limit:
            # a length running past the end of the file is a truncation;
            # otherwise it is just too long
            if self.pos + n > len(self.data):
                raise GGUFError("truncated: %s length %d runs past the end "
                                "of the file" % (what, n))
            raise GGUFError("%s length %d exceeds %d" % (what, n, limit))
        return self.take(n, what), n


def _read_scalar(cur, vtype, what):
    if vtype == T_STRING:
        b, _ = cur.string(what, MAX_STRING)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError("%s is not valid UTF-8" % what)
    if vtype == T_BOOL:
        v = cur.unpack("<B", what)
        if v > 1:
            raise GGUFError("%s: bool value %d is not 0 or 1" % (what, v))
        return bool(v)
    fmt = _SCALAR_FMT.get(vtype)
    if fmt is None:
        raise GGUFError("%s: unknown value type %d" % (what, vtype))
    return cur.unpack(fmt, what)


def parse_gguf(data, check=True):
    """Parse a GGUF file held in ``data`` (bytes).

    With ``check`` (the default) the container rules of
    docs/model-format.md are enforced and a GGUFError names the problem;
    the messages use the same words as the C loader (magic, version,
    tensor_count, kv_count, value type, truncated, key, duplicate, n_dims,
    dims, tensor type, alignment, past the end, overlap, name, count).
    """
    data = bytes(data)
    g = GGUFFile(data)
    cur = _Cursor(data)
    magic = cur.take(4, "magic")
    if magic != GGUF_MAGIC:
        raise GGUFError("bad magic %r (expected %r)" % (magic, GGUF_MAGIC))
    g.version = cur.unpack("<I", "version")
    if check and g.version != GGUF_VERSION:
        raise GGUFError("unsupported version %d (expected %d)"
                        % (g.version, GGUF_VERSION))
    g.tensor_count = cur.unpack("<Q", "tensor_count")
    g.kv_count = cur.unpack("<Q", "kv_count")
    if check and g.tensor_count > MAX_COUNT:
        raise GGUFError("tensor_count %d exceeds %d"
                        % (g.tensor_count, MAX_COUNT))
    if check and g.kv_count > MAX_COUNT:
        raise GGUFError("kv_count %d exceeds %d" % (g.kv_count, MAX_COUNT))

    for i in range(g.kv_count):
        kv = KV()
        kv.pos = cur.pos
        kb, n = cur.string("key %d" % i, MAX_NAME)
        if check and n == 0:
            raise GGUFError("key %d has length 0" % i)
        try:
            kv.key = kb.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError("key %d is not valid UTF-8" % i)
        what = "key '%s'" % kv.key
        if check and kv.key in g.kv:
            raise GGUFError("duplicate key '%s'" % kv.key)
        kv.type_pos = cur.pos
        kv.type = cur.unpack("<I", what + " value type")
        kv.value_pos = cur.pos
        kv.elem_type = None
        kv.elem_pos = []
        if kv.type == T_ARRAY:
            kv.elem_type = cur.unpack("<I", what + " array element type")
            count = cur.unpack("<Q", what + " array count")
            if kv.elem_type == T_ARRAY or kv.elem_type not in VALUE_TYPE_NAMES:
                raise GGUFError("%s: bad array element value type %d"
                                % (what, kv.elem_type))
            if check and count > MAX_ARRAY:
                raise GGUFError("%s: array count %d exceeds %d"
                                % (what, count, MAX_ARRAY))
            vals = []
            for j in range(count):
                kv.elem_pos.append(cur.pos)
                vals.append(_read_scalar(cur, kv.elem_type,
                                         "%s element %d" % (what, j)))
            kv.value = vals
        elif kv.type in VALUE_TYPE_NAMES:
            kv.value = _read_scalar(cur, kv.type, what)
        else:
            raise GGUFError("%s: unknown value type %d" % (what, kv.type))
        kv.end = cur.pos
        g.kv[kv.key] = kv

    ak = g.kv.get("general.alignment")
    if ak is not None:
        if ak.type not in (T_U8, T_U16, T_U32, T_U64, T_I32, T_I64):
            raise GGUFError("general.alignment must be an integer")
        g.alignment = ak.value
        if check and (g.alignment <= 0 or g.alignment & (g.alignment - 1)
                      or g.alignment > MAX_ALIGNMENT):
            raise GGUFError("general.alignment %d is not a power of two "
                            "<= %d" % (g.alignment, MAX_ALIGNMENT))

    for i in range(g.tensor_count):
        ti = TensorInfo()
        ti.pos = cur.pos
        nb, n = cur.string("tensor %d name" % i, MAX_NAME)
        if check and n == 0:
            raise GGUFError("tensor %d name has length 0" % i)
        try:
            ti.name = nb.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError("tensor %d name is not valid UTF-8" % i)
        what = "tensor '%s'" % ti.name
        if check and ti.name in g.by_name:
            raise GGUFError("duplicate tensor name '%s'" % ti.name)
        ti.ndims_pos = cur.pos
        nd = cur.unpack("<I", what + " n_dims")
        if check and not 1 <= nd <= MAX_DIMS:
            raise GGUFError("%s: n_dims %d not in 1..%d" % (what, nd,
                                                            MAX_DIMS))
        ti.dims_pos = cur.pos
        ti.dims = [cur.unpack("<Q", what + " dims") for _ in range(nd)]
        if check:
            prod = 1
            for d in ti.dims:
                if d < 1:
                    raise GGUFError("%s: dims %r contain 0" % (what, ti.dims))
                prod *= d          # Python ints: no overflow
                if prod > MAX_ELEMENTS:
                    raise GGUFError("%s: dims %r hold more than 2^31 "
                                    "elements" % (what, ti.dims))
        ti.type_pos = cur.pos
        ti.type = cur.unpack("<I", what + " tensor type")
        if check and ti.type not in TENSOR_ELEM_SIZE:
            raise GGUFError("%s: unsupported tensor type %d" % (what,
                                                                ti.type))
        ti.offset_pos = cur.pos
        ti.offset = cur.unpack("<Q", what + " offset")
        if check and ti.offset % g.alignment:
            raise GGUFError("%s: offset %d breaks the alignment %d"
                            % (what, ti.offset, g.alignment))
        ti.end = cur.pos
        g.tensors.append(ti)
        g.by_name[ti.name] = ti

    g.header_end = cur.pos
    g.data_start = align_up(cur.pos, g.alignment)
    if check:
        data_size = len(data) - g.data_start
        spans = []
        for ti in g.tensors:
            if data_size < 0 or ti.offset + ti.nbytes > data_size:
                raise GGUFError("tensor '%s': data [%d, %d) runs past the end "
                                "of the file (%d data bytes)"
                                % (ti.name, ti.offset, ti.offset + ti.nbytes,
                                   max(data_size, 0)))
            spans.append((ti.offset, ti.offset + ti.nbytes, ti.name))
        spans.sort()
        for a, b in zip(spans, spans[1:]):
            if b[0] < a[1]:
                raise GGUFError("tensors '%s' and '%s' overlap"
                                % (a[2], b[2]))
    return g


def read_gguf(path_or_bytes, check=True):
    """Read and parse a GGUF file (a path or the bytes themselves)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    return parse_gguf(data, check=check)


def kv_list(g):
    """The file's key/values as (key, vtype, value, elem_type) tuples,
    suitable for ``serialize``."""
    return [(kv.key, kv.type, kv.value, kv.elem_type) for kv in g.kv.values()]


def dump(path, out=sys.stdout):
    """Print a human-readable listing of a file."""
    g = read_gguf(path)
    out.write("GGUF v%d, %d keys, %d tensors, alignment %d, data at %d\n"
              % (g.version, len(g.kv), len(g.tensors), g.alignment,
                 g.data_start))
    for kv in g.kv.values():
        t = VALUE_TYPE_NAMES[kv.type]
        if kv.type == T_ARRAY:
            t = "%s[%s]" % (t, VALUE_TYPE_NAMES[kv.elem_type])
            v = repr(kv.value[:16])
            if len(kv.value) > 16:
                v = v[:-1] + ", ... (%d)]" % len(kv.value)
        else:
            v = repr(kv.value)
        out.write("  %-40s %-12s %s\n" % (kv.key, t, v))
    for ti in g.tensors:
        out.write("  %-60s %-5s %s @%d\n" % (
            ti.name, TENSOR_TYPE_NAMES[ti.type], list(ti.shape), ti.offset))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: gguf_writer.py FILE.gguf  (prints a listing)\n")
        sys.exit(2)
    try:
        dump(sys.argv[1])
    except GGUFError as e:
        sys.stderr.write("%s: %s\n" % (sys.argv[1], e))
        sys.exit(1)
