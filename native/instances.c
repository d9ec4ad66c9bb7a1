/* _instances: pre-training instances in C: [CLS] A [SEP] B [SEP] layout and Google's masking.
 *
 * pretraining_data_lib.py picks the spans (Google's segment and next-sentence choices, in
 * Python); these two functions turn spans into model inputs for whole batches:
 *
 *   build_input_ids(token_ids, spans, input_ids, segment_ids, lengths, cls_id, sep_id)
 *   mask_rows(input_ids, lengths, budgets, continues_word, positions, labels, weights,
 *             mask_id, vocab_size, seed)
 *
 * Arrays are numpy arrays passed through the buffer protocol: inputs read, outputs written in
 * place (allocated by the caller, zero-filled). Masking draws from its own generator
 * (xoshiro256**, seeded with splitmix64 from `seed`), so a batch's masks depend on the seed
 * only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---- arrays ---------------------------------------------------------------------------- */

typedef struct {
  Py_buffer view;
  const char *name;
} Array;

/* What an argument must be: a C-contiguous `ndim`-D buffer of `itemsize`-byte items whose
 * struct format is one of `formats`; `optional` ones may be None. */
typedef struct {
  const char *name, *formats;
  Py_ssize_t itemsize;
  int ndim, writable, optional;
} ArraySpec;

static int get_array(PyObject *object, const ArraySpec *spec, Array *array) {
  array->name = spec->name;
  int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (spec->writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(object, &array->view, flags) < 0) return -1;
  const char *format = array->view.format;
  if (format[0] == '<' || format[0] == '=' || format[0] == '@') format++;
  if (strlen(format) != 1 || strchr(spec->formats, format[0]) == NULL ||
      array->view.itemsize != spec->itemsize || array->view.ndim != spec->ndim) {
    PyErr_Format(PyExc_TypeError, "%s: expected a %d-D array of %zd-byte items (format %s), "
                 "got format '%s', %d-D", spec->name, spec->ndim, spec->itemsize,
                 spec->formats, array->view.format, array->view.ndim);
    PyBuffer_Release(&array->view);
    return -1;
  }
  return 0;
}

/* Gets arrays[i] from objects[i] per specs[i]; ready[i] says which to release (an optional
 * None stays not ready). Returns 0, or -1 with an exception set. */
static int get_arrays(PyObject *const *objects, const ArraySpec *specs, int count,
                      Array *arrays, int *ready) {
  for (int i = 0; i < count; i++) {
    ready[i] = 0;
    if (specs[i].optional && objects[i] == Py_None) continue;
    if (get_array(objects[i], &specs[i], &arrays[i]) < 0) return -1;
    ready[i] = 1;
  }
  return 0;
}

static void release_arrays(Array *arrays, const int *ready, int count) {
  for (int i = 0; i < count; i++)
    if (ready[i]) PyBuffer_Release(&arrays[i].view);
}

static Py_ssize_t dim(const Array *array, int axis) { return array->view.shape[axis]; }

static int check_dim(const Array *array, int axis, Py_ssize_t expected) {
  if (dim(array, axis) == expected) return 0;
  PyErr_Format(PyExc_ValueError, "%s: dimension %d is %zd, expected %zd", array->name, axis,
               dim(array, axis), expected);
  return -1;
}

/* ---- build_input_ids ------------------------------------------------------------------- */

PyDoc_STRVAR(build_input_ids_doc,
"build_input_ids(token_ids, spans, input_ids, segment_ids, lengths, cls_id, sep_id)\n\n"
"token_ids: int32 [T]. spans: int64 [N, >=4], (start_a, end_a, start_b, end_b) into token_ids.\n"
"Writes input_ids, segment_ids (int32 [N, S], zero-filled) and lengths (int64 [N]).");

static PyObject *build_input_ids(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *objects[5];
  int cls_id, sep_id;
  if (!PyArg_ParseTuple(args, "OOOOOii:build_input_ids", &objects[0], &objects[1], &objects[2],
                        &objects[3], &objects[4], &cls_id, &sep_id))
    return NULL;
  static const ArraySpec specs[5] = {
      {"token_ids", "i", 4, 1, 0, 0}, {"spans", "lq", 8, 2, 0, 0},
      {"input_ids", "i", 4, 2, 1, 0}, {"segment_ids", "i", 4, 2, 1, 0},
      {"lengths", "lq", 8, 1, 1, 0}};
  Array arrays[5];
  int ready[5] = {0}, failed = 1;
  if (get_arrays(objects, specs, 5, arrays, ready) < 0) goto done;
  const Array *tokens = &arrays[0], *spans = &arrays[1], *input_ids = &arrays[2],
              *segment_ids = &arrays[3], *lengths = &arrays[4];
  Py_ssize_t rows = dim(spans, 0), width = dim(spans, 1), seq = dim(input_ids, 1);
  if (width < 4 || check_dim(input_ids, 0, rows) < 0 || check_dim(segment_ids, 0, rows) < 0 ||
      check_dim(segment_ids, 1, seq) < 0 || check_dim(lengths, 0, rows) < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "spans: need 4 columns");
    goto done;
  }
  const int32_t *token = tokens->view.buf;
  const int64_t *span = spans->view.buf;
  Py_ssize_t num_tokens = dim(tokens, 0);
  for (Py_ssize_t row = 0; row < rows; row++) { /* Validate first: no partial output. */
    const int64_t *s = span + row * width;
    if (s[0] < 0 || s[0] > s[1] || s[1] > num_tokens || s[2] < 0 || s[2] > s[3] ||
        s[3] > num_tokens || (s[1] - s[0]) + (s[3] - s[2]) + 3 > seq) {
      PyErr_Format(PyExc_ValueError, "spans[%zd] = (%lld, %lld, %lld, %lld) does not fit %zd "
                   "tokens and sequences of %zd", row, (long long)s[0], (long long)s[1],
                   (long long)s[2], (long long)s[3], num_tokens, seq);
      goto done;
    }
  }
  int32_t *ids = input_ids->view.buf, *segments = segment_ids->view.buf;
  int64_t *length = lengths->view.buf;
  for (Py_ssize_t row = 0; row < rows; row++) {
    const int64_t *s = span + row * width;
    Py_ssize_t length_a = s[1] - s[0], length_b = s[3] - s[2];
    int32_t *out = ids + row * seq, *segment = segments + row * seq;
    out[0] = cls_id;
    memcpy(out + 1, token + s[0], length_a * sizeof(int32_t));
    out[1 + length_a] = sep_id;
    memcpy(out + 2 + length_a, token + s[2], length_b * sizeof(int32_t));
    out[2 + length_a + length_b] = sep_id;
    for (Py_ssize_t i = 2 + length_a; i <= 2 + length_a + length_b; i++) segment[i] = 1;
    length[row] = length_a + length_b + 3;
  }
  failed = 0;
done:
  release_arrays(arrays, ready, 5);
  if (failed) return NULL;
  Py_RETURN_NONE;
}

/* ---- random numbers -------------------------------------------------------------------- */

typedef struct {
  uint64_t s[4];
} Rng;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static void rng_seed(Rng *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(Rng *rng) { /* xoshiro256** */
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

static inline double rng_uniform(Rng *rng) { /* [0, 1), 53 bits */
  return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

static inline uint64_t rng_below(Rng *rng, uint64_t bound) { /* [0, bound), unbiased */
  uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    unsigned __int128 product = (unsigned __int128)rng_next(rng) * bound;
    if ((uint64_t)product >= threshold) return (uint64_t)(product >> 64);
  }
}

/* ---- mask_rows ------------------------------------------------------------------------- */

static int compare_int32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

PyDoc_STRVAR(mask_rows_doc,
"mask_rows(input_ids, lengths, budgets, continues_word, positions, labels, weights,\n"
"          cls_id, sep_id, mask_id, vocab_size, seed)\n\n"
"Google's create_masked_lm_predictions on each row of input_ids (int32 [N, S], masked in\n"
"place). Candidates are the first lengths[i] tokens except [CLS] and [SEP]; with\n"
"continues_word (bool [V], or None) a piece it marks joins the previous candidate's word.\n"
"Words are shuffled and taken in that order while they fit in budgets[i] (int64 [N]) tokens;\n"
"each chosen token becomes [MASK] with probability 0.8, stays with 0.1, or becomes a random\n"
"id below vocab_size with 0.1. Writes positions, labels (int32 [N, P], zero-filled) and\n"
"weights (float32 [N, P]) in position order; budgets must not exceed P.");

static PyObject *mask_rows(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *objects[7];
  int cls_id, sep_id, mask_id;
  long long vocab_size;
  unsigned long long seed;
  if (!PyArg_ParseTuple(args, "OOOOOOOiiiLK:mask_rows", &objects[0], &objects[1], &objects[2],
                        &objects[3], &objects[4], &objects[5], &objects[6], &cls_id, &sep_id,
                        &mask_id, &vocab_size, &seed))
    return NULL;
  int whole_words = objects[3] != Py_None;
  static const ArraySpec specs[7] = {
      {"input_ids", "i", 4, 2, 1, 0}, {"lengths", "lq", 8, 1, 0, 0},
      {"budgets", "lq", 8, 1, 0, 0},  {"continues_word", "?", 1, 1, 0, 1},
      {"positions", "i", 4, 2, 1, 0}, {"labels", "i", 4, 2, 1, 0},
      {"weights", "f", 4, 2, 1, 0}};
  Array arrays[7];
  int ready[7] = {0}, failed = 1;
  int32_t *candidates = NULL, *word_start = NULL, *word_end = NULL, *chosen = NULL;
  if (get_arrays(objects, specs, 7, arrays, ready) < 0) goto done;
  Array *input_ids = &arrays[0], *positions = &arrays[4];
  Py_ssize_t rows = dim(input_ids, 0), seq = dim(input_ids, 1), slots = dim(positions, 1);
  for (int i = 1; i < 7; i++)
    if (i != 3 && check_dim(&arrays[i], 0, rows) < 0) goto done;
  if (check_dim(&arrays[5], 1, slots) < 0 || check_dim(&arrays[6], 1, slots) < 0) goto done;
  const int64_t *length = arrays[1].view.buf, *budget = arrays[2].view.buf;
  for (Py_ssize_t row = 0; row < rows; row++) {
    if (budget[row] > slots || budget[row] < 0 || length[row] < 0 || length[row] > seq) {
      PyErr_Format(PyExc_ValueError, "row %zd: budget %lld and length %lld must lie in [0, %zd] "
                   "and [0, %zd]", row, (long long)budget[row], (long long)length[row], slots,
                   seq);
      goto done;
    }
  }
  if (vocab_size <= 0) {
    PyErr_SetString(PyExc_ValueError, "vocab_size must be positive");
    goto done;
  }
  candidates = PyMem_Malloc((seq + 1) * sizeof(int32_t));
  word_start = PyMem_Malloc((seq + 1) * sizeof(int32_t));
  word_end = PyMem_Malloc((seq + 1) * sizeof(int32_t));
  chosen = PyMem_Malloc((seq + 1) * sizeof(int32_t));
  if (candidates == NULL || word_start == NULL || word_end == NULL || chosen == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  int32_t *ids = input_ids->view.buf, *position_out = positions->view.buf;
  int32_t *label_out = arrays[5].view.buf;
  float *weight_out = arrays[6].view.buf;
  const uint8_t *continues_word = whole_words ? arrays[3].view.buf : NULL;
  Py_ssize_t vocabulary = whole_words ? dim(&arrays[3], 0) : 0;
  Rng rng;
  rng_seed(&rng, seed);
  for (Py_ssize_t row = 0; row < rows; row++) {
    int32_t *row_ids = ids + row * seq;
    /* Words of candidate positions: candidates[word_start[w]:word_end[w]]. */
    Py_ssize_t num_candidates = 0, num_words = 0;
    for (Py_ssize_t i = 0; i < length[row]; i++) {
      int32_t id = row_ids[i];
      if (id == cls_id || id == sep_id) continue;
      int joins = whole_words && num_words > 0 && id >= 0 && id < vocabulary &&
                  continues_word[id];
      if (!joins) {
        word_start[num_words] = (int32_t)num_candidates;
        num_words++;
      }
      candidates[num_candidates++] = (int32_t)i;
      word_end[num_words - 1] = (int32_t)num_candidates;
    }
    /* Google shuffles the words and takes each that still fits: a Fisher-Yates shuffle,
     * drawn only as far as needed. */
    Py_ssize_t taken = 0;
    for (Py_ssize_t w = 0; w < num_words && taken < budget[row]; w++) {
      Py_ssize_t pick = w + (Py_ssize_t)rng_below(&rng, (uint64_t)(num_words - w));
      int32_t start = word_start[pick], end = word_end[pick];
      word_start[pick] = word_start[w];
      word_end[pick] = word_end[w];
      if (taken + (end - start) > budget[row]) continue;
      for (int32_t c = start; c < end; c++) chosen[taken++] = candidates[c];
    }
    qsort(chosen, (size_t)taken, sizeof(int32_t), compare_int32);
    int32_t *row_positions = position_out + row * slots, *row_labels = label_out + row * slots;
    float *row_weights = weight_out + row * slots;
    for (Py_ssize_t k = 0; k < taken; k++) {
      int32_t at = chosen[k];
      row_positions[k] = at;
      row_labels[k] = row_ids[at];
      row_weights[k] = 1.0f;
      if (rng_uniform(&rng) < 0.8)
        row_ids[at] = mask_id;
      else if (rng_uniform(&rng) >= 0.5) /* Else the token stays. */
        row_ids[at] = (int32_t)rng_below(&rng, (uint64_t)vocab_size);
    }
  }
  failed = 0;
done:
  PyMem_Free(candidates);
  PyMem_Free(word_start);
  PyMem_Free(word_end);
  PyMem_Free(chosen);
  release_arrays(arrays, ready, 7);
  if (failed) return NULL;
  Py_RETURN_NONE;
}

static PyMethodDef instances_methods[] = {
    {"build_input_ids", build_input_ids, METH_VARARGS, build_input_ids_doc},
    {"mask_rows", mask_rows, METH_VARARGS, mask_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef instances_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_instances",
    .m_doc = "Pre-training instance layout and masking in C (see pretraining_data_lib.py).",
    .m_size = -1,
    .m_methods = instances_methods,
};

PyMODINIT_FUNC PyInit__instances(void) { return PyModule_Create(&instances_module); }
