/* _jsonl: JSON text of float arrays in C, for extract_features' JSONL (feature_extraction.py).
 *
 * float_rows(values) turns a C-contiguous float64 array [rows, width] into one str per row,
 * "[v, v, ...]", each v exactly the text json.dumps writes for float(v): Python's repr, or
 * NaN / Infinity / -Infinity.
 *
 * extract_features writes round(x, 6): the double nearest to k / 1e6 for an integer k. Such a
 * value with |k| < 1e15 takes integer arithmetic: repr is the shortest decimal that reads
 * back as the same double, and two distinct decimals of at most 15 significant digits are
 * never the same double, so repr's digits are k's digits. Python's repr rules then give the
 * layout: "0.000123" and "12.5" down to 1e-4, "1e-05" and "1.5e-06" below, "12.0" for
 * integral values, "-0.0". Any other value takes Python's own repr (PyOS_double_to_string).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Longest repr of a double, "-2.2250738585072014e-308", plus the ", " before it, rounded up. */
#define MAX_NUMBER_CHARS 32

static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes the two digits of value < 100. */
static inline char *put_two_digits(char *out, uint32_t value) {
  memcpy(out, digit_pairs + 2 * value, 2);
  return out + 2;
}

/* Writes value's decimal digits. */
static inline char *put_uint(char *out, uint64_t value) {
  if (value < 10) { /* Most hidden-state values: |x| < 10. */
    *out = (char)('0' + value);
    return out + 1;
  }
  char digits[20];
  char *start = digits + sizeof digits;
  for (; value >= 100; value /= 100) {
    start -= 2;
    memcpy(start, digit_pairs + 2 * (value % 100), 2);
  }
  if (value >= 10) {
    start -= 2;
    memcpy(start, digit_pairs + 2 * value, 2);
  } else {
    *--start = (char)('0' + value);
  }
  size_t length = (size_t)(digits + sizeof digits - start);
  memcpy(out, start, length);
  return out + length;
}

/* Writes repr(value) for value = micros / 1e6 (micros < 1e15; negative: a leading "-"). */
static inline char *put_micros(char *out, uint64_t micros, int negative) {
  *out = '-';
  out += negative;
  if (micros != 0 && micros < 100) { /* Below 1e-4: exponent notation, "5e-06", "1.5e-05". */
    if (micros < 10) {
      *out++ = (char)('0' + micros);
      memcpy(out, "e-06", 4);
    } else {
      *out++ = (char)('0' + micros / 10);
      if (micros % 10 != 0) {
        *out++ = '.';
        *out++ = (char)('0' + micros % 10);
      }
      memcpy(out, "e-05", 4);
    }
    return out + 4;
  }
  out = put_uint(out, micros / 1000000);
  *out++ = '.';
  uint32_t fraction = (uint32_t)(micros % 1000000);
  if (fraction == 0) { /* Integral: "12.0". */
    *out = '0';
    return out + 1;
  }
  out = put_two_digits(out, fraction / 10000);
  out = put_two_digits(out, fraction / 100 % 100);
  out = put_two_digits(out, fraction % 100);
  while (out[-1] == '0') out--; /* Stops at the fraction's last nonzero digit. */
  return out;
}

/* Writes json.dumps(value) at out; returns the char after it, or NULL with an exception set. */
static char *put_number(char *out, double value) {
  if (!isfinite(value)) {
    const char *text = isnan(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
    size_t length = strlen(text);
    memcpy(out, text, length);
    return out + length;
  }
  double micros = rint(value * 1e6);
  /* Exact division: equality means value is the double nearest to micros / 1e6. */
  if (fabs(value) < 1e9 && micros / 1e6 == value)
    return put_micros(out, (uint64_t)fabs(micros), signbit(value) != 0);
  char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
  if (text == NULL) return NULL;
  size_t length = strlen(text);
  memcpy(out, text, length);
  PyMem_Free(text);
  return out + length;
}

PyDoc_STRVAR(float_rows_doc,
             "float_rows(values) -> list of str\n\n"
             "values: C-contiguous float64 array [rows, width]. One JSON array per row,\n"
             "'[v, v, ...]', each v as json.dumps writes the float.");

static PyObject *float_rows(PyObject *self, PyObject *values) {
  Py_buffer view;
  if (PyObject_GetBuffer(values, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
  const char *format = view.format;
  if (format[0] == '<' || format[0] == '=' || format[0] == '@') format++;
  if (strcmp(format, "d") != 0 || view.itemsize != 8 || view.ndim != 2) {
    PyErr_Format(PyExc_TypeError, "float_rows: expected a 2-D float64 array, got format '%s', "
                 "%d-D", view.format, view.ndim);
    PyBuffer_Release(&view);
    return NULL;
  }
  Py_ssize_t rows = view.shape[0], width = view.shape[1];
  const double *row_values = (const double *)view.buf;
  PyObject *result = PyList_New(rows);
  char *text = PyMem_Malloc(2 + (size_t)width * MAX_NUMBER_CHARS);
  if (result == NULL || text == NULL) {
    if (result != NULL) PyErr_NoMemory();
    goto failed;
  }
  for (Py_ssize_t row = 0; row < rows; row++, row_values += width) {
    char *out = text;
    *out++ = '[';
    for (Py_ssize_t i = 0; i < width; i++) {
      if (i > 0) {
        memcpy(out, ", ", 2);
        out += 2;
      }
      out = put_number(out, row_values[i]);
      if (out == NULL) goto failed;
    }
    *out++ = ']';
    PyObject *line = PyUnicode_New(out - text, 127); /* ASCII: one byte a character. */
    if (line == NULL) goto failed;
    memcpy(PyUnicode_1BYTE_DATA(line), text, (size_t)(out - text));
    PyList_SET_ITEM(result, row, line);
  }
  PyMem_Free(text);
  PyBuffer_Release(&view);
  return result;
failed:
  PyMem_Free(text);
  Py_XDECREF(result);
  PyBuffer_Release(&view);
  return NULL;
}

static PyMethodDef jsonl_methods[] = {
    {"float_rows", float_rows, METH_O, float_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef jsonl_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_jsonl",
    .m_doc = "JSON text of float arrays in C (see feature_extraction.py).",
    .m_size = -1,
    .m_methods = jsonl_methods,
};

PyMODINIT_FUNC PyInit__jsonl(void) { return PyModule_Create(&jsonl_module); }
