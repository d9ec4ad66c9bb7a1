"""Vectorised tf.train.Example encoding and TFRecord framing, without TensorFlow.

Pre-training data is a long stream of `tf.train.Example`s with one fixed schema. Building each
proto through the protobuf API costs tens of microseconds per instance in Python, and importing
TensorFlow costs seconds and ~650 MB of memory per process. Here a whole batch of examples is
encoded at once with numpy:

* `encode_examples(features)` writes the protobuf wire format of `tf.train.Example` for N rows
  of fixed-width features. Entries appear in the order given (Google's script uses an
  OrderedDict in the same order); the bytes parse to the same `tf.train.Example` as the
  protobuf API builds (tests/test_create_pretraining_data.py checks this).
* `frame_tfrecords(...)` adds TFRecord framing: uint64 length, masked CRC-32C of the length,
  data, masked CRC-32C of the data. The CRC-32C advances 4 bytes per step with two 16-bit
  lookup tables, across all records of a batch at once.

Wire format reminder (all field numbers are 1 unless noted):
  Example{features} -> Features{repeated MapEntry feature} -> MapEntry{key, value=2: Feature}
  Feature{bytes_list=1 | float_list=2 | int64_list=3} -> Int64List / FloatList{packed value}
"""

import numpy as np

_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected.
_MASK_DELTA = 0xA282EAD8


def _crc32c_tables() -> np.ndarray:
  """Returns uint32 [4, 256]: table k advances the register over a byte followed by k zeros."""
  base = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    base = np.where(base & 1, (base >> 1) ^ np.uint32(_CRC32C_POLY), base >> 1).astype(np.uint32)
  tables = [base]
  for _ in range(3):
    prev = tables[-1]
    tables.append((prev >> 8) ^ base[prev & 0xFF])
  return np.stack(tables)


_TABLES = _crc32c_tables()
# Two 16-bit tables advance the register over 4 bytes with 2 lookups instead of 4.
_PAIR = np.arange(1 << 16, dtype=np.uint32)
_TABLE_LOW16 = _TABLES[3][_PAIR & 0xFF] ^ _TABLES[2][_PAIR >> 8]
_TABLE_HIGH16 = _TABLES[1][_PAIR & 0xFF] ^ _TABLES[0][_PAIR >> 8]
del _PAIR
# The top byte of table[0] is a permutation of 0..255, which lets us step the register
# backwards over a zero byte (see _start_registers).
_TOP_BYTE_INVERSE = np.argsort(_TABLES[0] >> 24).astype(np.uint32)
_start_register_cache = [0xFFFFFFFF]


def _start_registers(num_zeros: np.ndarray) -> np.ndarray:
  """Registers that become the CRC's initial 0xFFFFFFFF after `num_zeros` leading zero bytes.

  Left-padding every record with zeros to a common width lets one vectorised loop run over all
  of them; starting each record from this register makes the padding invisible.
  """
  table0 = _TABLES[0]
  needed = int(num_zeros.max(initial=0))
  while len(_start_register_cache) <= needed:
    after = _start_register_cache[-1]
    index = int(_TOP_BYTE_INVERSE[after >> 24])
    _start_register_cache.append((((after ^ int(table0[index])) << 8) | index) & 0xFFFFFFFF)
  return np.asarray(_start_register_cache, dtype=np.uint32)[num_zeros]


def crc32c_rows(rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """CRC-32C of each row's last `lengths[i]` bytes.

  Args:
    rows: uint8 [N, W], W a multiple of 4, each record right-aligned (zeros before it).
    lengths: int [N], the record lengths.
  Returns:
    uint32 [N].
  """
  num_rows, width = rows.shape
  assert width % 4 == 0
  register = _start_registers(width - np.asarray(lengths, dtype=np.int64))
  # Column-major words make each step read one contiguous row of the transposed array.
  words = np.ascontiguousarray(rows.view("<u4").T)
  register_halves = register.view(np.uint16).reshape(num_rows, 2)
  low, high = np.empty(num_rows, np.uint32), np.empty(num_rows, np.uint32)
  for step in range(width // 4):
    np.bitwise_xor(register, words[step], out=register)
    np.take(_TABLE_LOW16, register_halves[:, 0], out=low)
    np.take(_TABLE_HIGH16, register_halves[:, 1], out=high)
    np.bitwise_xor(low, high, out=register)
  return register ^ np.uint32(0xFFFFFFFF)


def mask_crc(crc: np.ndarray) -> np.ndarray:
  """TFRecord's masked CRC: rotate right by 15 bits and add a constant (uint32 [N])."""
  crc = crc.astype(np.uint64)
  return ((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF).astype(np.uint32)


def frame_tfrecords(flat: np.ndarray, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
  """Frames N concatenated records as TFRecords.

  Args:
    flat: uint8 [sum(lengths)], the records back to back.
    lengths: int64 [N].
  Returns:
    (framed bytes, int64 [N] framed lengths = lengths + 16).
  """
  lengths = np.asarray(lengths, dtype=np.int64)
  num_rows = len(lengths)
  ends = np.cumsum(lengths)
  starts = ends - lengths
  width = int(-(-lengths.max(initial=0) // 4) * 4)
  # Rows of equal width, each record right-aligned after zeros. Row-by-row slice copies
  # (memcpys) beat np.insert and byte-level scatters here.
  aligned = np.zeros((num_rows, width), dtype=np.uint8)
  for row, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
    aligned[row, width - (end - start):] = flat[start:end]
  data_crc = mask_crc(crc32c_rows(aligned, lengths))
  length_bytes = lengths.astype("<u8").view(np.uint8).reshape(num_rows, 8)
  length_crc = mask_crc(crc32c_rows(length_bytes, np.full(num_rows, 8)))
  header = np.concatenate(
      [length_bytes, length_crc.astype("<u4").view(np.uint8).reshape(num_rows, 4)], axis=1)
  trailer = data_crc.astype("<u4").view(np.uint8).reshape(num_rows, 4)
  # np.insert keeps insertions at one index in the order given: record i's trailer comes
  # before record i + 1's header.
  framed = np.insert(flat, np.concatenate([np.repeat(ends, 4), np.repeat(starts, 12)]),
                     np.concatenate([trailer.ravel(), header.ravel()]))
  return framed.tobytes(), lengths + 16


def _varint_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
  """Protobuf varints of non-negative ints, each padded to the widest one.

  Args:
    values: int [N, K], 0 <= value < 2**32.
  Returns:
    (bytes uint8 [N, K * B], valid bool [N, K * B] or None when every byte is used), B the
    widest varint's byte count; the valid bytes of a row, in order, are its varints back to back.
  """
  values = np.asarray(values)
  rows = values.shape[0]
  if values.size and (int(values.min()) < 0 or int(values.max()) >= 1 << 32):
    raise ValueError("int64 features here must lie in [0, 2**32)")
  values = values.astype(np.uint32)
  max_value = int(values.max(initial=0))
  if max_value < 0x80:
    return values.astype(np.uint8), None
  num_bytes = (max_value.bit_length() + 6) // 7
  groups, used = [], []
  for index in range(num_bytes):
    group = (values >> np.uint32(7 * index)).astype(np.uint8) & np.uint8(0x7F)
    if index + 1 < num_bytes:
      group |= (values >= np.uint32(1 << (7 * index + 7))).view(np.uint8) << np.uint8(7)
    groups.append(group)
    used.append(values >= np.uint32(1 << (7 * index)) if index else np.ones(values.shape, bool))
  return (np.stack(groups, axis=2).reshape(rows, -1), np.stack(used, axis=2).reshape(rows, -1))


def _constant(rows: int, data: bytes) -> tuple[np.ndarray, np.ndarray]:
  return np.broadcast_to(np.frombuffer(data, dtype=np.uint8), (rows, len(data))), None


def _varint_of_lengths(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  return _varint_parts(np.asarray(lengths).reshape(-1, 1))


def _varint_size(lengths: np.ndarray) -> np.ndarray:
  lengths = np.asarray(lengths, dtype=np.int64)
  size = np.ones_like(lengths)
  for bits in (7, 14, 21, 28, 35, 42, 49, 56):
    size += lengths >= (1 << bits)
  return size


def _example_grid(features: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
  """The examples' bytes laid out in a grid: uint8 [N, W] and valid bool [N, W]; each row's
  valid bytes, in order, are its serialised example."""
  rows = len(features[0][1])
  parts = []  # (bytes [N, W], valid [N, W]) in wire order.
  features_length = np.zeros(rows, dtype=np.int64)
  for name, values in features:
    key = name.encode("utf-8")
    values = np.asarray(values)
    if values.dtype.kind == "f":
      payload = values.astype("<f4").view(np.uint8).reshape(rows, -1)
      payload_parts = (payload, None)
      payload_length = np.full(rows, payload.shape[1], dtype=np.int64)
      list_tag = b"\x12"  # Feature.float_list = 2, length-delimited.
    else:
      payload_parts = _varint_parts(values)
      payload_length = (np.full(rows, payload_parts[0].shape[1], dtype=np.int64)
                        if payload_parts[1] is None else
                        payload_parts[1].sum(axis=1, dtype=np.int64))
      list_tag = b"\x1a"  # Feature.int64_list = 3, length-delimited.
    list_length = 1 + _varint_size(payload_length) + payload_length
    feature_length = 1 + _varint_size(list_length) + list_length
    entry_length = (1 + _varint_size(len(key)) + len(key) + 1 + _varint_size(feature_length)
                    + feature_length)
    features_length += 1 + _varint_size(entry_length) + entry_length
    parts += [
        _constant(rows, b"\x0a"), _varint_of_lengths(entry_length),  # Features.feature entry.
        _constant(rows, b"\x0a" + _encode_varint(len(key)) + key + b"\x12"),  # key, value tag.
        _varint_of_lengths(feature_length),
        _constant(rows, list_tag), _varint_of_lengths(list_length),
        _constant(rows, b"\x0a"), _varint_of_lengths(payload_length),  # packed value field.
        payload_parts,
    ]
  parts = [_constant(rows, b"\x0a"), _varint_of_lengths(features_length)] + parts
  grid = np.concatenate([p[0] for p in parts], axis=1)
  valid = np.concatenate([np.ones(p[0].shape, dtype=bool) if p[1] is None else p[1]
                          for p in parts], axis=1)
  return grid, valid


def encode_examples(features: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
  """Serialises N `tf.train.Example`s of fixed-width features.

  Args:
    features: (name, values) pairs in output order; values int [N, K] (int64_list, must be
      in [0, 2**32)) or float [N, K] (float_list, stored as float32).
  Returns:
    (flat uint8 [total], lengths int64 [N]): the serialised examples back to back.
  """
  grid, valid = _example_grid(features)
  # np.compress on flat arrays is ~2x faster than boolean indexing grid[valid].
  return np.compress(valid.ravel(), grid.ravel()), valid.sum(axis=1, dtype=np.int64)


def _encode_varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)
