/* _tfrecord: tf.train.Example serialisation and TFRecord framing in C, without TensorFlow.
 *
 * encode_examples(features) turns N rows of fixed-width features into N framed TFRecords of
 * tf.train.Example, the bytes TensorFlow's TFRecordWriter writes for those protos
 * (pretraining_data_lib.encode_tfrecords). Two passes over the rows, with the GIL released:
 * sizes first, so the output is one exact allocation, then the bytes.
 *
 * Wire format (field numbers 1 unless noted):
 *   Example{features} -> Features{repeated MapEntry feature}
 *   MapEntry{key, value = 2: Feature} -> Feature{float_list = 2 | int64_list = 3}
 *   Int64List{packed varint value} / FloatList{packed fixed32 value}
 * TFRecord: uint64 length, masked CRC-32C of those 8 bytes, data, masked CRC-32C of the data.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---- CRC-32C (Castagnoli), slicing by 8 ------------------------------------------------ */

static uint32_t crc_tables[8][256];

static void crc_init(void) {
  for (uint32_t byte = 0; byte < 256; byte++) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    crc_tables[0][byte] = crc;
  }
  for (int k = 1; k < 8; k++)
    for (int byte = 0; byte < 256; byte++)
      crc_tables[k][byte] =
          (crc_tables[k - 1][byte] >> 8) ^ crc_tables[0][crc_tables[k - 1][byte] & 0xFF];
}

static uint32_t crc32c(const uint8_t *data, size_t length) {
  uint32_t crc = 0xFFFFFFFFu;
  for (; length >= 8; data += 8, length -= 8) {
    uint32_t low, high;
    memcpy(&low, data, 4);
    memcpy(&high, data + 4, 4);
    low ^= crc; /* Little-endian hosts only: checked at import. */
    crc = crc_tables[7][low & 0xFF] ^ crc_tables[6][(low >> 8) & 0xFF] ^
          crc_tables[5][(low >> 16) & 0xFF] ^ crc_tables[4][low >> 24] ^
          crc_tables[3][high & 0xFF] ^ crc_tables[2][(high >> 8) & 0xFF] ^
          crc_tables[1][(high >> 16) & 0xFF] ^ crc_tables[0][high >> 24];
  }
  for (; length > 0; data++, length--) crc = (crc >> 8) ^ crc_tables[0][(crc ^ *data) & 0xFF];
  return crc ^ 0xFFFFFFFFu;
}

static uint32_t masked_crc(const uint8_t *data, size_t length) {
  uint32_t crc = crc32c(data, length);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

/* ---- protobuf pieces ------------------------------------------------------------------- */

/* Varint sizes and bytes without data-dependent branches: token ids take 1 to 3 bytes at
 * random, which a byte loop would mispredict on every value. */
static inline size_t varint_size(uint64_t value) {
  int bits = 64 - __builtin_clzll(value | 1);
  return (size_t)(bits + 6) / 7;
}

/* Writes the varint and returns the byte after it. Stores 8 bytes whatever the size: the
 * output buffer keeps VARINT_SLACK bytes spare past its end. */
#define VARINT_SLACK 8
static inline uint8_t *put_varint(uint8_t *out, uint64_t value) {
  if (value >= (1ULL << 56)) { /* 9 or 10 bytes: rare (negative or huge values). */
    while (value >= 0x80) {
      *out++ = (uint8_t)(value | 0x80);
      value >>= 7;
    }
    *out++ = (uint8_t)value;
    return out;
  }
  size_t size = varint_size(value);
  uint64_t groups = (value & 0x7FULL) | ((value << 1) & 0x7F00ULL) | ((value << 2) & 0x7F0000ULL);
  if (value >= (1ULL << 21)) /* Token ids stay below: three groups suffice for them. */
    groups |= ((value << 3) & 0x7F000000ULL) | ((value << 4) & 0x7F00000000ULL) |
              ((value << 5) & 0x7F0000000000ULL) | ((value << 6) & 0x7F000000000000ULL) |
              ((value << 7) & 0x7F00000000000000ULL);
  groups |= 0x8080808080808080ULL & ((1ULL << (8 * (size - 1))) - 1); /* Continuation bits. */
  memcpy(out, &groups, 8); /* Little-endian hosts only: checked at import. */
  return out + size;
}

static inline void put_le32(uint8_t *out, uint32_t value) {
  for (int i = 0; i < 4; i++) out[i] = (uint8_t)(value >> (8 * i));
}

enum { INT32, INT64, FLOAT32 };

typedef struct {
  Py_buffer view;  /* [rows, width], C-contiguous. */
  const char *key;
  size_t key_length;
  int type;        /* INT32, INT64 or FLOAT32. */
  int small;       /* Every value in [0, 128): one byte per varint (masks, positions, labels). */
  Py_ssize_t width;
} Feature;

static inline int64_t value_at(const Feature *feature, Py_ssize_t index) {
  return feature->type == INT32 ? ((const int32_t *)feature->view.buf)[index]
                                : ((const int64_t *)feature->view.buf)[index];
}

static int all_small(const Feature *feature) {
  Py_ssize_t count = feature->view.len / feature->view.itemsize;
  uint64_t large = 0;
  if (feature->type == INT32) {
    const int32_t *values = feature->view.buf;
    for (Py_ssize_t i = 0; i < count; i++) large |= (uint32_t)values[i] >> 7;
  } else {
    const int64_t *values = feature->view.buf;
    for (Py_ssize_t i = 0; i < count; i++) large |= (uint64_t)values[i] >> 7;
  }
  return large == 0;
}

/* Bytes of the packed values of one row of a feature. */
static size_t payload_size(const Feature *feature, Py_ssize_t row) {
  if (feature->type == FLOAT32) return 4 * (size_t)feature->width;
  if (feature->small) return (size_t)feature->width;
  size_t size = 0;
  Py_ssize_t start = row * feature->width;
  for (Py_ssize_t k = 0; k < feature->width; k++)
    size += varint_size((uint64_t)value_at(feature, start + k));
  return size;
}

/* Sizes of the nested messages of one map entry, innermost first. */
typedef struct {
  size_t payload, list, feature, entry;
} EntrySizes;

static inline EntrySizes entry_sizes(const Feature *feature, size_t payload) {
  EntrySizes s;
  s.payload = payload;
  s.list = 1 + varint_size(s.payload) + s.payload;  /* value: tag, length, packed values. */
  s.feature = 1 + varint_size(s.list) + s.list;     /* int64_list / float_list. */
  s.entry = 1 + varint_size(feature->key_length) + feature->key_length /* key */ +
            1 + varint_size(s.feature) + s.feature; /* value */
  return s;
}

/* Size of one serialised Example; fills payloads[f] for put_example. */
static size_t example_size(const Feature *features, Py_ssize_t num_features, Py_ssize_t row,
                           size_t *payloads, size_t *features_size) {
  size_t size = 0;
  for (Py_ssize_t f = 0; f < num_features; f++) {
    payloads[f] = payload_size(&features[f], row);
    size_t entry = entry_sizes(&features[f], payloads[f]).entry;
    size += 1 + varint_size(entry) + entry;
  }
  *features_size = size;
  return 1 + varint_size(size) + size; /* Example.features */
}

static uint8_t *put_values(uint8_t *out, const Feature *feature, Py_ssize_t row,
                           size_t payload) {
  Py_ssize_t start = row * feature->width;
  if (feature->type == FLOAT32) {
    memcpy(out, (const float *)feature->view.buf + start, payload);
    return out + payload;
  }
  if (feature->small) {
    for (Py_ssize_t k = 0; k < feature->width; k++) out[k] = (uint8_t)value_at(feature, start + k);
    return out + payload;
  }
  for (Py_ssize_t k = 0; k < feature->width; k++)
    out = put_varint(out, (uint64_t)value_at(feature, start + k));
  return out;
}

static uint8_t *put_example(uint8_t *out, const Feature *features, Py_ssize_t num_features,
                            Py_ssize_t row, const size_t *payloads, size_t features_size) {
  *out++ = 0x0A; /* Example.features */
  out = put_varint(out, features_size);
  for (Py_ssize_t f = 0; f < num_features; f++) {
    const Feature *feature = &features[f];
    EntrySizes s = entry_sizes(feature, payloads[f]);
    *out++ = 0x0A; /* Features.feature (map entry) */
    out = put_varint(out, s.entry);
    *out++ = 0x0A; /* key */
    out = put_varint(out, feature->key_length);
    memcpy(out, feature->key, feature->key_length);
    out += feature->key_length;
    *out++ = 0x12; /* value */
    out = put_varint(out, s.feature);
    *out++ = feature->type == FLOAT32 ? 0x12 : 0x1A; /* float_list = 2, int64_list = 3 */
    out = put_varint(out, s.list);
    *out++ = 0x0A; /* packed value */
    out = put_varint(out, s.payload);
    out = put_values(out, feature, row, s.payload);
  }
  return out;
}
/* ---- encode_examples ------------------------------------------------------------------- */

static void release_features(Feature *features, Py_ssize_t count) {
  for (Py_ssize_t f = 0; f < count; f++) PyBuffer_Release(&features[f].view);
  PyMem_Free(features);
}

/* Reads one (name, array) pair. Returns 0, or -1 with an exception set. */
static int read_feature(PyObject *pair, Py_ssize_t index, Feature *feature, Py_ssize_t *rows) {
  PyObject *name, *array;
  if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "UO", &name, &array)) {
    PyErr_Format(PyExc_TypeError, "features[%zd] must be a (str name, array) pair", index);
    return -1;
  }
  Py_ssize_t key_length;
  feature->key = PyUnicode_AsUTF8AndSize(name, &key_length);
  if (feature->key == NULL) return -1;
  feature->key_length = (size_t)key_length;
  if (PyObject_GetBuffer(array, &feature->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
    return -1;
  const char *format = feature->view.format;
  if (format[0] == '<' || format[0] == '=' || format[0] == '@') format++;
  Py_ssize_t itemsize = feature->view.itemsize;
  int is_integer = strlen(format) == 1 && strchr("ilq", format[0]) != NULL;
  if (strcmp(format, "f") == 0 && itemsize == 4) {
    feature->type = FLOAT32;
  } else if (is_integer && itemsize == 4) {
    feature->type = INT32;
  } else if (is_integer && itemsize == 8) {
    feature->type = INT64;
  } else {
    feature->type = -1;
  }
  if (feature->type < 0 || feature->view.ndim != 2) {
    PyErr_Format(PyExc_TypeError,
                 "feature %R must be a 2-D C-contiguous int32, int64 or float32 array, got "
                 "format '%s' with %d dimensions", name, feature->view.format,
                 feature->view.ndim);
    PyBuffer_Release(&feature->view);
    return -1;
  }
  if (*rows >= 0 && feature->view.shape[0] != *rows) {
    PyErr_Format(PyExc_ValueError, "feature %R has %zd rows, the first feature %zd", name,
                 feature->view.shape[0], *rows);
    PyBuffer_Release(&feature->view);
    return -1;
  }
  *rows = feature->view.shape[0];
  feature->width = feature->view.shape[1];
  feature->small = feature->type != FLOAT32 && all_small(feature);
  return 0;
}

PyDoc_STRVAR(encode_examples_doc,
"encode_examples(features) -> (records, lengths)\n\n"
"features: list of (name, array) in output order; each array int32, int64 or float32\n"
"[N, K], C-contiguous (int64_list / float_list features). Returns the N framed TFRecords of\n"
"the tf.train.Examples back to back (bytes) and their framed lengths (bytes of int64 [N]).");

static PyObject *encode_examples(PyObject *module, PyObject *list) {
  (void)module;
  PyObject *sequence = PySequence_Fast(list, "features must be a list of (name, array)");
  if (sequence == NULL) return NULL;
  Py_ssize_t num_features = PySequence_Fast_GET_SIZE(sequence);
  Feature *features = PyMem_Calloc(num_features ? num_features : 1, sizeof(Feature));
  if (features == NULL) {
    Py_DECREF(sequence);
    return PyErr_NoMemory();
  }
  Py_ssize_t rows = -1, ready = 0;
  PyObject *records = NULL, *lengths = NULL, *result = NULL;
  size_t *payloads = NULL, *features_sizes = NULL;
  for (; ready < num_features; ready++)
    if (read_feature(PySequence_Fast_GET_ITEM(sequence, ready), ready, &features[ready],
                     &rows) < 0)
      goto done;
  if (rows < 0) rows = 0;
  lengths = PyBytes_FromStringAndSize(NULL, rows * (Py_ssize_t)sizeof(int64_t));
  /* Per row: each feature's payload size, then the Features message size. */
  payloads = PyMem_Malloc(((size_t)rows * num_features + 1) * sizeof(size_t));
  features_sizes = PyMem_Malloc(((size_t)rows + 1) * sizeof(size_t));
  if (lengths == NULL || payloads == NULL || features_sizes == NULL) {
    if (lengths != NULL) PyErr_NoMemory();
    goto done;
  }
  int64_t *record_lengths = (int64_t *)PyBytes_AS_STRING(lengths);
  size_t total = 0;
  Py_BEGIN_ALLOW_THREADS
  for (Py_ssize_t row = 0; row < rows; row++) {
    record_lengths[row] = (int64_t)example_size(features, num_features, row,
                                                &payloads[row * num_features],
                                                &features_sizes[row]);
    total += 16 + (size_t)record_lengths[row];
  }
  Py_END_ALLOW_THREADS
  records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total + VARINT_SLACK));
  if (records == NULL) goto done;
  uint8_t *out = (uint8_t *)PyBytes_AS_STRING(records);
  Py_BEGIN_ALLOW_THREADS
  for (Py_ssize_t row = 0; row < rows; row++) {
    uint64_t length = (uint64_t)record_lengths[row];
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(length >> (8 * i));
    put_le32(out + 8, masked_crc(out, 8));
    uint8_t *data = out + 12;
    out = put_example(data, features, num_features, row, &payloads[row * num_features],
                      features_sizes[row]);
    put_le32(out, masked_crc(data, (size_t)(out - data)));
    out += 4;
    record_lengths[row] += 16;
  }
  Py_END_ALLOW_THREADS
  if (_PyBytes_Resize(&records, (Py_ssize_t)total) < 0) goto done; /* Drops the slack. */
  result = PyTuple_Pack(2, records, lengths);
done:
  PyMem_Free(payloads);
  PyMem_Free(features_sizes);
  Py_XDECREF(records);
  Py_XDECREF(lengths);
  release_features(features, ready);
  Py_DECREF(sequence);
  return result;
}

static PyMethodDef tfrecord_methods[] = {
    {"encode_examples", encode_examples, METH_O, encode_examples_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tfrecord_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_tfrecord",
    .m_doc = "tf.train.Example + TFRecord framing in C (see pretraining_data_lib.py).",
    .m_size = -1,
    .m_methods = tfrecord_methods,
};

PyMODINIT_FUNC PyInit__tfrecord(void) {
  const uint16_t probe = 1;
  if (*(const uint8_t *)&probe != 1) {
    PyErr_SetString(PyExc_ImportError, "_tfrecord supports little-endian hosts only");
    return NULL;
  }
  crc_init();
  return PyModule_Create(&tfrecord_module);
}
