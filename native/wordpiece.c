/* _wordpiece: Google's BERT BasicTokenizer + WordpieceTokenizer in C, for bulk tokenization.
 *
 * The Unicode knowledge stays in Python: tokenization.py passes a function that, for one code
 * point, returns what Google's BasicTokenizer makes of that character on its own (cleaning,
 * CJK spacing, lower-casing, accent stripping, punctuation split, with token breaks written as
 * spaces), or None where the result depends on context (the line then takes the exact Python
 * path). Answers are cached in a lazily filled table of 256-code-point pages, so the callback
 * runs once per distinct character.
 *
 * Encoding a batch happens in three phases:
 *   1. with the GIL: check the inputs are str and classify any character not seen before;
 *   2. without the GIL: normalise and split each line, then greedy longest-match-first
 *      WordPiece over the UTF-8 bytes of each word (two hash tables: word-initial pieces and
 *      "##" continuations stored without their prefix), writing int32 ids;
 *   3. with the GIL: build the result objects.
 * Phase 2 only reads shared state, so several threads can encode at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_CODE_POINT 0x10FFFF
#define PAGE_BITS 8
#define PAGE_SIZE (1 << PAGE_BITS)
#define NUM_PAGES ((MAX_CODE_POINT >> PAGE_BITS) + 1)
#define MAX_NORMALIZED 6 /* Code points per character; Python's Unicode needs at most 3. */

enum { UNKNOWN = -2, CONTEXT_DEPENDENT = -1 };

typedef struct {
  int8_t length; /* UNKNOWN, CONTEXT_DEPENDENT, or the number of code points in `normalized`. */
  uint32_t normalized[MAX_NORMALIZED]; /* ' ' = token break. */
} CharEntry;

/* ---- vocabulary hash table ------------------------------------------------------------- */

/* Slots are 16 bytes, so that the table of a 30k vocabulary (~750 KB) stays in L2 cache:
 * a lookup of a rare word then costs one cache miss, not several. A key's first eight bytes
 * sit in the slot; longer keys compare the rest through `tails`. */
typedef struct {
  uint64_t head;   /* The key's first (up to) 8 bytes, little-endian, zero-padded. */
  uint32_t length; /* Key bytes. */
  int32_t id;      /* -1: empty slot. */
} Slot;

typedef struct {
  Slot *slots;
  const char **tails;   /* Per slot: the key, when longer than 8 bytes. */
  uint64_t capacity;
  Py_ssize_t max_bytes; /* Longest key: no longer substring can match. */
} PieceTable;

static inline uint64_t load_head(const char *data, Py_ssize_t length) {
  uint64_t head = 0;
  if (length >= 8) {
    memcpy(&head, data, 8);
  } else {
    for (Py_ssize_t i = 0; i < length; i++) head |= (uint64_t)(unsigned char)data[i] << (8 * i);
  }
  return head;
}

static inline uint64_t hash_key(uint64_t head, const char *data, Py_ssize_t length) {
  /* The head and each further 8 bytes take one multiply: words are short. */
  uint64_t hash = (head ^ (uint64_t)length) * 0x9E3779B97F4A7C15ULL;
  for (Py_ssize_t at = 8; at < length; at += 8) {
    hash ^= hash >> 29;
    hash = (hash ^ load_head(data + at, length - at)) * 0xBF58476D1CE4E5B9ULL;
  }
  return hash ^ (hash >> 32);
}

/* The slot a hash starts probing at: multiply-shift maps it onto any capacity. */
static inline uint64_t home_slot(const PieceTable *table, uint64_t hash) {
  return (uint64_t)(((unsigned __int128)hash * table->capacity) >> 64);
}

static int table_init(PieceTable *table, Py_ssize_t num_keys) {
  table->capacity = (uint64_t)num_keys * 3 / 2 + 16; /* Load factor <= 2/3. */
  table->slots = PyMem_Malloc(table->capacity * sizeof(Slot));
  table->tails = PyMem_Calloc(table->capacity, sizeof(const char *));
  if (table->slots == NULL || table->tails == NULL) return -1;
  for (uint64_t i = 0; i < table->capacity; i++) table->slots[i] = (Slot){0, 0, -1};
  table->max_bytes = 0;
  return 0;
}

static void table_free(PieceTable *table) {
  PyMem_Free(table->slots);
  PyMem_Free(table->tails);
}

static inline int same_bytes(const char *a, const char *b, Py_ssize_t length) {
  for (Py_ssize_t i = 0; i < length; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* Index of the slot holding key, or of the empty slot where it belongs. */
static inline uint64_t table_probe(const PieceTable *table, const char *key, Py_ssize_t length) {
  uint64_t head = load_head(key, length);
  uint64_t i = home_slot(table, hash_key(head, key, length));
  for (;; i = i + 1 == table->capacity ? 0 : i + 1) {
    const Slot *slot = &table->slots[i];
    if (slot->id < 0) return i;
    if (slot->head == head && slot->length == (uint32_t)length &&
        (length <= 8 || same_bytes(table->tails[i] + 8, key + 8, length - 8)))
      return i;
  }
}

/* Inserts key -> id; a key seen before keeps its first id. `key` must outlive the table. */
static void table_insert(PieceTable *table, const char *key, Py_ssize_t length, int32_t id) {
  uint64_t i = table_probe(table, key, length);
  if (table->slots[i].id >= 0) return;
  table->slots[i] = (Slot){load_head(key, length), (uint32_t)length, id};
  table->tails[i] = key;
  if (length > table->max_bytes) table->max_bytes = length;
}

static inline int32_t table_find(const PieceTable *table, const char *key, Py_ssize_t length) {
  return table->slots[table_probe(table, key, length)].id;
}

/* ---- growable buffers (used without the GIL: plain malloc) ----------------------------- */

typedef struct {
  int32_t *data;
  size_t length, capacity;
} IdBuffer;

static int ids_push(IdBuffer *buffer, int32_t id) {
  if (buffer->length == buffer->capacity) {
    size_t capacity = buffer->capacity ? 2 * buffer->capacity : 4096;
    int32_t *data = realloc(buffer->data, capacity * sizeof(int32_t));
    if (data == NULL) return -1;
    buffer->data = data;
    buffer->capacity = capacity;
  }
  buffer->data[buffer->length++] = id;
  return 0;
}

/* A word being assembled: its UTF-8 bytes and, for non-ASCII words, the byte offset of each
 * code point (WordPiece may only cut at code point boundaries). */
typedef struct {
  char *bytes;
  Py_ssize_t *offsets; /* offsets[i] = start of code point i; offsets[num_chars] = end. */
  Py_ssize_t num_chars, capacity; /* capacity in code points; bytes hold 4 per code point. */
} Word;

static int word_reserve(Word *word, Py_ssize_t num_chars) {
  if (num_chars < word->capacity) return 0;
  Py_ssize_t capacity = word->capacity ? word->capacity : 256;
  while (capacity <= num_chars) capacity *= 2;
  char *bytes = realloc(word->bytes, 4 * (size_t)capacity);
  if (bytes == NULL) return -1;
  word->bytes = bytes;
  Py_ssize_t *offsets = realloc(word->offsets, (size_t)(capacity + 1) * sizeof(Py_ssize_t));
  if (offsets == NULL) return -1;
  word->offsets = offsets;
  word->capacity = capacity;
  return 0;
}

static inline int word_append(Word *word, uint32_t cp) {
  if (word->num_chars + 1 >= word->capacity && word_reserve(word, word->num_chars + 1) < 0)
    return -1;
  Py_ssize_t at = word->num_chars ? word->offsets[word->num_chars] : 0;
  char *out = word->bytes + at;
  /* Lone surrogates never reach here: the Python side marks them context-dependent. */
  if (cp < 0x80) {
    out[0] = (char)cp;
    at += 1;
  } else if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    at += 2;
  } else if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    at += 3;
  } else {
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    at += 4;
  }
  word->offsets[0] = 0;
  word->offsets[++word->num_chars] = at;
  return 0;
}

/* ---- the tokenizer object -------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  PieceTable initial;      /* Pieces that start a word. */
  PieceTable continuation; /* "##" pieces, stored without "##". */
  PyObject *vocab_keys;    /* Owns the UTF-8 bytes the tables point into. */
  PyObject **id_objects;   /* id -> int object, so result lists only take references. */
  Py_ssize_t vocab_size;
  int32_t unk_id;          /* -1: the vocabulary has no unknown token. */
  Py_ssize_t max_input_chars_per_word;
  PyObject *normalize_char; /* cp -> str (with ' ' as breaks) or None. */
  CharEntry *pages[NUM_PAGES];
  /* ASCII text, nearly all of most corpora, takes a byte loop over these tables. */
  int ascii_fast;               /* Every ASCII character normalises to one of ascii_action's. */
  uint8_t ascii_action[128];    /* ASCII_* below. */
  char ascii_char[128];         /* ASCII_APPEND: the (lower-cased) byte. */
  int32_t ascii_punct_id[128];  /* ASCII_PUNCT: id of the character as a word (-1: none). */
} WordPiece;

enum { ASCII_APPEND, ASCII_DROP, ASCII_BREAK, ASCII_PUNCT };

/* Asks Python what `cp` becomes and caches it. Needs the GIL. */
static int learn_char(WordPiece *self, uint32_t cp) {
  CharEntry **page = &self->pages[cp >> PAGE_BITS];
  if (*page == NULL) {
    CharEntry *entries = PyMem_Malloc(PAGE_SIZE * sizeof(CharEntry));
    if (entries == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    for (int i = 0; i < PAGE_SIZE; i++) entries[i].length = UNKNOWN;
    *page = entries;
  }
  CharEntry *entry = &(*page)[cp & (PAGE_SIZE - 1)];
  PyObject *result = PyObject_CallFunction(self->normalize_char, "I", (unsigned int)cp);
  if (result == NULL) return -1;
  if (result == Py_None) {
    entry->length = CONTEXT_DEPENDENT;
  } else if (!PyUnicode_Check(result)) {
    PyErr_Format(PyExc_TypeError, "normalize_char(%u) returned %.100s, expected str or None",
                 (unsigned int)cp, Py_TYPE(result)->tp_name);
    Py_DECREF(result);
    return -1;
  } else {
    Py_ssize_t length = PyUnicode_GET_LENGTH(result);
    if (length > MAX_NORMALIZED) {
      entry->length = CONTEXT_DEPENDENT; /* Rare enough to leave to Python. */
    } else {
      for (Py_ssize_t i = 0; i < length; i++) {
        uint32_t out = PyUnicode_READ_CHAR(result, i);
        entry->normalized[i] = out;
        if (out >= 0xD800 && out <= 0xDFFF) length = CONTEXT_DEPENDENT; /* Not UTF-8. */
      }
      entry->length = (int8_t)length;
    }
  }
  Py_DECREF(result);
  return 0;
}

static int learn_chars_of(WordPiece *self, PyObject *text) {
  if (PyUnicode_IS_ASCII(text)) return 0; /* All of ASCII is learned at construction. */
  int kind = PyUnicode_KIND(text);
  const void *data = PyUnicode_DATA(text);
  Py_ssize_t length = PyUnicode_GET_LENGTH(text);
  for (Py_ssize_t i = 0; i < length; i++) {
    uint32_t cp = PyUnicode_READ(kind, data, i);
    CharEntry *page = self->pages[cp >> PAGE_BITS];
    if ((page == NULL || page[cp & (PAGE_SIZE - 1)].length == UNKNOWN) &&
        learn_char(self, cp) < 0)
      return -1;
  }
  return 0;
}

/* One line's result in phase 2. */
enum { LINE_OK = 0, LINE_NEEDS_PYTHON = 1 };

static inline int push_word_id(const WordPiece *self, int32_t id, IdBuffer *ids) {
  if (id < 0) id = self->unk_id;
  if (id < 0) return LINE_NEEDS_PYTHON; /* Python raises KeyError for the missing [UNK]. */
  return ids_push(ids, id);
}

/* Appends the WordPiece ids of one word to `ids`: greedy longest-match-first, as Google.
 * offsets: byte offset of each code point, or NULL when every code point is one byte.
 * Returns LINE_OK, LINE_NEEDS_PYTHON (an unknown word and no unknown token to stand for it),
 * or -1 on memory failure. */
static inline __attribute__((always_inline)) int emit_word(
    const WordPiece *self, const char *bytes, Py_ssize_t num_chars, const Py_ssize_t *offsets,
    IdBuffer *ids) {
  if (num_chars > self->max_input_chars_per_word) return push_word_id(self, -1, ids);
#define OFFSET(i) (offsets ? offsets[i] : (i))
  size_t first = ids->length;
  for (Py_ssize_t start = 0; start < num_chars;) {
    const PieceTable *table = start == 0 ? &self->initial : &self->continuation;
    const Py_ssize_t start_byte = OFFSET(start);
    Py_ssize_t end = num_chars;
    while (end > start && OFFSET(end) - start_byte > table->max_bytes) end--;
    int32_t id = -1;
    for (; end > start; end--) {
      id = table_find(table, bytes + start_byte, OFFSET(end) - start_byte);
      if (id >= 0) break;
    }
    if (id < 0) {
      ids->length = first; /* Google's rule: one uncovered position makes the word unknown. */
      return push_word_id(self, -1, ids);
    }
    if (ids_push(ids, id) < 0) return -1;
    start = end;
  }
  return LINE_OK;
#undef OFFSET
}

/* Tokenizes one ASCII line (phase 2, no GIL). Same return values as emit_word. */
static int encode_ascii_line(const WordPiece *self, const unsigned char *text,
                             Py_ssize_t length, Word *word, IdBuffer *ids) {
  if (word_reserve(word, length) < 0) return -1;
  char *bytes = word->bytes;
  Py_ssize_t num_chars = 0;
  int status = LINE_OK;
  for (Py_ssize_t i = 0; i <= length && status == LINE_OK; i++) {
    unsigned char c = i < length ? text[i] : ' ';
    uint8_t action = self->ascii_action[c];
    if (action == ASCII_APPEND) {
      bytes[num_chars++] = self->ascii_char[c];
      continue;
    }
    if (action == ASCII_DROP) continue;
    if (num_chars > 0) {
      status = emit_word(self, bytes, num_chars, NULL, ids);
      num_chars = 0;
    }
    if (action == ASCII_PUNCT && status == LINE_OK)
      status = push_word_id(self, self->ascii_punct_id[c], ids);
  }
  return status;
}

/* Tokenizes one line of any text (phase 2, no GIL); `kind` is a constant in each caller, so
 * the compiler specialises the reads. Same return values as emit_word. */
static inline __attribute__((always_inline)) int encode_unicode_line(
    const WordPiece *self, int kind, const void *data, Py_ssize_t length, Word *word,
    IdBuffer *ids) {
  word->num_chars = 0;
  int status = LINE_OK;
  for (Py_ssize_t i = 0; i <= length && status == LINE_OK; i++) {
    static const uint32_t line_end = ' '; /* A final break flushes the last word. */
    const uint32_t *normalized = &line_end;
    int count = 1;
    if (i < length) {
      uint32_t cp = PyUnicode_READ(kind, data, i);
      const CharEntry *entry = &self->pages[cp >> PAGE_BITS][cp & (PAGE_SIZE - 1)];
      if (entry->length == CONTEXT_DEPENDENT) return LINE_NEEDS_PYTHON;
      normalized = entry->normalized;
      count = entry->length;
    }
    for (int j = 0; j < count && status == LINE_OK; j++) {
      if (normalized[j] != ' ') {
        if (word->num_chars > self->max_input_chars_per_word)
          word->num_chars++; /* Already [UNK]: count, but keep no bytes. */
        else if (word_append(word, normalized[j]) < 0)
          return -1;
      } else if (word->num_chars > 0) {
        status = emit_word(self, word->bytes, word->num_chars, word->offsets, ids);
        word->num_chars = 0;
      }
    }
  }
  return status;
}

static int encode_line(const WordPiece *self, int kind, int is_ascii, const void *data,
                       Py_ssize_t length, Word *word, IdBuffer *ids) {
  size_t first = ids->length;
  int status;
  if (is_ascii && self->ascii_fast)
    status = encode_ascii_line(self, data, length, word, ids);
  else if (kind == PyUnicode_1BYTE_KIND)
    status = encode_unicode_line(self, PyUnicode_1BYTE_KIND, data, length, word, ids);
  else if (kind == PyUnicode_2BYTE_KIND)
    status = encode_unicode_line(self, PyUnicode_2BYTE_KIND, data, length, word, ids);
  else
    status = encode_unicode_line(self, PyUnicode_4BYTE_KIND, data, length, word, ids);
  if (status != LINE_OK) ids->length = first; /* The line's ids come from Python, or none. */
  return status;
}

typedef struct {
  int kind, is_ascii;
  const void *data;
  Py_ssize_t length;
} TextView;

typedef struct {
  Py_ssize_t num_texts;
  IdBuffer ids;
  Py_ssize_t *ends;        /* ends[i]: ids of lines 0..i, so line i is ids[ends[i-1]:ends[i]]. */
  unsigned char *needs_python;
} Encoded;

static void encoded_free(Encoded *encoded) {
  free(encoded->ids.data);
  PyMem_Free(encoded->ends);
  PyMem_Free(encoded->needs_python);
}

/* Runs the three phases' first two on a list of str. Returns 0 or -1 with an exception set. */
static int encode_texts(WordPiece *self, PyObject *texts, Encoded *encoded) {
  memset(encoded, 0, sizeof(*encoded));
  PyObject *sequence = PySequence_Fast(texts, "texts must be a sequence of str");
  if (sequence == NULL) return -1;
  Py_ssize_t n = encoded->num_texts = PySequence_Fast_GET_SIZE(sequence);
  PyObject **items = PySequence_Fast_ITEMS(sequence);
  TextView *views = PyMem_Malloc((n ? n : 1) * sizeof(TextView));
  encoded->ends = PyMem_Malloc((n ? n : 1) * sizeof(Py_ssize_t));
  encoded->needs_python = PyMem_Calloc(n ? n : 1, 1);
  if (views == NULL || encoded->ends == NULL || encoded->needs_python == NULL) {
    PyErr_NoMemory();
    goto error;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *text = items[i];
    if (!PyUnicode_Check(text)) {
      PyErr_Format(PyExc_TypeError, "texts[%zd] is %.100s, expected str", i,
                   Py_TYPE(text)->tp_name);
      goto error;
    }
    if (learn_chars_of(self, text) < 0) goto error;
    views[i] = (TextView){PyUnicode_KIND(text), PyUnicode_IS_ASCII(text), PyUnicode_DATA(text),
                          PyUnicode_GET_LENGTH(text)};
  }
  int failed = 0;
  Word word = {0};
  /* `sequence` keeps every str alive, and str data never moves: safe to read without the GIL. */
  Py_BEGIN_ALLOW_THREADS
  for (Py_ssize_t i = 0; i < n && !failed; i++) {
    int status = encode_line(self, views[i].kind, views[i].is_ascii, views[i].data,
                             views[i].length, &word, &encoded->ids);
    if (status < 0) failed = 1;
    encoded->needs_python[i] = status == LINE_NEEDS_PYTHON;
    encoded->ends[i] = (Py_ssize_t)encoded->ids.length;
  }
  free(word.bytes);
  free(word.offsets);
  Py_END_ALLOW_THREADS
  if (failed) {
    PyErr_NoMemory();
    goto error;
  }
  PyMem_Free(views);
  Py_DECREF(sequence);
  return 0;
error:
  PyMem_Free(views);
  Py_DECREF(sequence);
  encoded_free(encoded);
  return -1;
}

static PyObject *rows_needing_python(const Encoded *encoded, Py_ssize_t n) {
  PyObject *rows = PyList_New(0);
  if (rows == NULL) return NULL;
  for (Py_ssize_t i = 0; i < n; i++) {
    if (!encoded->needs_python[i]) continue;
    PyObject *index = PyLong_FromSsize_t(i);
    if (index == NULL || PyList_Append(rows, index) < 0) {
      Py_XDECREF(index);
      Py_DECREF(rows);
      return NULL;
    }
    Py_DECREF(index);
  }
  return rows;
}

PyDoc_STRVAR(encode_lists_doc,
"encode_lists(texts) -> (ids, python_rows)\n\n"
"texts: list of str. ids: one list of int per text. python_rows: indices of the texts\n"
"left for the exact Python path (their ids are empty lists here).");

static PyObject *WordPiece_encode_lists(WordPiece *self, PyObject *texts) {
  Encoded encoded;
  if (encode_texts(self, texts, &encoded) < 0) return NULL;
  Py_ssize_t n = encoded.num_texts;
  PyObject *lists = PyList_New(n), *rows = NULL, *result = NULL;
  if (lists == NULL) goto done;
  for (Py_ssize_t i = 0, start = 0; i < n; start = encoded.ends[i++]) {
    PyObject *list = PyList_New(encoded.ends[i] - start);
    if (list == NULL) goto done;
    for (Py_ssize_t j = start; j < encoded.ends[i]; j++) {
      PyObject *id = self->id_objects[encoded.ids.data[j]];
      Py_INCREF(id);
      PyList_SET_ITEM(list, j - start, id);
    }
    PyList_SET_ITEM(lists, i, list);
  }
  rows = rows_needing_python(&encoded, n);
  if (rows != NULL) result = PyTuple_Pack(2, lists, rows);
done:
  Py_XDECREF(lists);
  Py_XDECREF(rows);
  encoded_free(&encoded);
  return result;
}

PyDoc_STRVAR(encode_arrays_doc,
"encode_arrays(texts) -> (ids, counts, python_rows)\n\n"
"texts: list of str. ids: bytes of int32, every text's ids back to back. counts: bytes of\n"
"int64, the number of ids of each text. python_rows: as encode_lists (count 0 there).");

static PyObject *WordPiece_encode_arrays(WordPiece *self, PyObject *texts) {
  Encoded encoded;
  if (encode_texts(self, texts, &encoded) < 0) return NULL;
  Py_ssize_t n = encoded.num_texts;
  PyObject *ids = PyBytes_FromStringAndSize((const char *)encoded.ids.data,
                                            (Py_ssize_t)(encoded.ids.length * sizeof(int32_t)));
  PyObject *counts = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
  PyObject *rows = NULL, *result = NULL;
  if (ids == NULL || counts == NULL) goto done;
  int64_t *count = (int64_t *)PyBytes_AS_STRING(counts);
  for (Py_ssize_t i = 0, start = 0; i < n; start = encoded.ends[i++])
    count[i] = encoded.ends[i] - start;
  rows = rows_needing_python(&encoded, n);
  if (rows != NULL) result = PyTuple_Pack(3, ids, counts, rows);
done:
  Py_XDECREF(ids);
  Py_XDECREF(counts);
  Py_XDECREF(rows);
  encoded_free(&encoded);
  return result;
}

/* Fills the ASCII byte-loop tables from the learned entries of code points 0..127. */
static void build_ascii_tables(WordPiece *self) {
  self->ascii_fast = 1;
  for (int c = 0; c < 128; c++) {
    const CharEntry *entry = &self->pages[0][c];
    const uint32_t *out = entry->normalized;
    self->ascii_punct_id[c] = -1;
    if (entry->length == 0) {
      self->ascii_action[c] = ASCII_DROP;
    } else if (entry->length == 1 && out[0] == ' ') {
      self->ascii_action[c] = ASCII_BREAK;
    } else if (entry->length == 1 && out[0] < 0x80) {
      self->ascii_action[c] = ASCII_APPEND;
      self->ascii_char[c] = (char)out[0];
    } else if (entry->length == 3 && out[0] == ' ' && out[2] == ' ' && out[1] < 0x80) {
      char piece = (char)out[1];
      self->ascii_action[c] = ASCII_PUNCT;
      if (self->max_input_chars_per_word >= 1)
        self->ascii_punct_id[c] = table_find(&self->initial, &piece, 1);
    } else {
      self->ascii_fast = 0; /* Not what Google's rules give; the general loop copes. */
    }
  }
}

/* WordPiece(tokens, unk_id, max_input_chars_per_word, normalize_char) */
static int WordPiece_init(WordPiece *self, PyObject *args, PyObject *kwargs) {
  static char *keywords[] = {"tokens", "unk_id", "max_input_chars_per_word", "normalize_char",
                             NULL};
  PyObject *tokens, *normalize_char;
  int unk_id;
  Py_ssize_t max_chars;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OinO:WordPiece", keywords, &tokens, &unk_id,
                                   &max_chars, &normalize_char))
    return -1;
  if (self->vocab_keys != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "WordPiece is already initialised");
    return -1;
  }
  if (!PyCallable_Check(normalize_char)) {
    PyErr_SetString(PyExc_TypeError, "normalize_char must be callable");
    return -1;
  }
  PyObject *sequence = PySequence_Fast(tokens, "tokens must be a sequence of str or None");
  if (sequence == NULL) return -1;
  Py_ssize_t size = PySequence_Fast_GET_SIZE(sequence);
  if (size > INT32_MAX || unk_id < -1 || unk_id >= size) {
    Py_DECREF(sequence);
    PyErr_SetString(PyExc_ValueError, "unk_id must index tokens (or be -1)");
    return -1;
  }
  self->vocab_size = size;
  self->unk_id = unk_id;
  self->max_input_chars_per_word = max_chars;
  Py_INCREF(normalize_char);
  self->normalize_char = normalize_char;
  self->vocab_keys = PyList_New(size);
  self->id_objects = PyMem_Calloc(size ? size : 1, sizeof(PyObject *));
  if (self->vocab_keys == NULL || self->id_objects == NULL) {
    PyErr_NoMemory();
    goto error;
  }
  Py_ssize_t num_continuations = 0;
  for (Py_ssize_t id = 0; id < size; id++) {
    self->id_objects[id] = PyLong_FromSsize_t(id);
    if (self->id_objects[id] == NULL) goto error;
    PyObject *token = PySequence_Fast_GET_ITEM(sequence, id);
    PyObject *key = token == Py_None ? Py_NewRef(Py_None) : PyUnicode_AsUTF8String(token);
    if (key == NULL) goto error;
    PyList_SET_ITEM(self->vocab_keys, id, key);
    num_continuations += key != Py_None && PyBytes_GET_SIZE(key) > 2 &&
                         strncmp(PyBytes_AS_STRING(key), "##", 2) == 0;
  }
  if (table_init(&self->initial, size) < 0 ||
      table_init(&self->continuation, num_continuations) < 0) {
    PyErr_NoMemory();
    goto error;
  }
  for (Py_ssize_t id = 0; id < size; id++) {
    PyObject *key = PyList_GET_ITEM(self->vocab_keys, id);
    if (key == Py_None) continue;
    const char *bytes = PyBytes_AS_STRING(key);
    Py_ssize_t length = PyBytes_GET_SIZE(key);
    /* As in Python, "##x" matches x inside a word, and literally at a word's start. */
    if (length > 2 && bytes[0] == '#' && bytes[1] == '#')
      table_insert(&self->continuation, bytes + 2, length - 2, (int32_t)id);
    if (length > 0) table_insert(&self->initial, bytes, length, (int32_t)id);
  }
  Py_DECREF(sequence);
  for (uint32_t cp = 0; cp < 0x80; cp++)
    if (learn_char(self, cp) < 0) return -1;
  build_ascii_tables(self);
  return 0;
error:
  Py_DECREF(sequence);
  return -1;
}

static void WordPiece_dealloc(WordPiece *self) {
  table_free(&self->initial);
  table_free(&self->continuation);
  if (self->id_objects != NULL) {
    for (Py_ssize_t i = 0; i < self->vocab_size; i++) Py_XDECREF(self->id_objects[i]);
    PyMem_Free(self->id_objects);
  }
  for (Py_ssize_t i = 0; i < NUM_PAGES; i++) PyMem_Free(self->pages[i]);
  Py_XDECREF(self->vocab_keys);
  Py_XDECREF(self->normalize_char);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef WordPiece_methods[] = {
    {"encode_lists", (PyCFunction)WordPiece_encode_lists, METH_O, encode_lists_doc},
    {"encode_arrays", (PyCFunction)WordPiece_encode_arrays, METH_O, encode_arrays_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(WordPiece_doc,
"WordPiece(tokens, unk_id, max_input_chars_per_word, normalize_char)\n\n"
"tokens: the vocabulary by id (None where an id has no token). unk_id: id of the unknown\n"
"token, -1 if none. normalize_char: cp -> str, what Google's BasicTokenizer makes of that\n"
"character alone with token breaks as ' ', or None when it depends on context.");

static PyTypeObject WordPieceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_wordpiece.WordPiece",
    .tp_basicsize = sizeof(WordPiece),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = WordPiece_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)WordPiece_init,
    .tp_dealloc = (destructor)WordPiece_dealloc,
    .tp_methods = WordPiece_methods,
};

static struct PyModuleDef wordpiece_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_wordpiece",
    .m_doc = "Google's BERT WordPiece tokenization in C (see tokenization.FullTokenizer).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__wordpiece(void) {
  if (PyType_Ready(&WordPieceType) < 0) return NULL;
  PyObject *module = PyModule_Create(&wordpiece_module);
  if (module == NULL) return NULL;
  Py_INCREF(&WordPieceType);
  if (PyModule_AddObject(module, "WordPiece", (PyObject *)&WordPieceType) < 0) {
    Py_DECREF(&WordPieceType);
    Py_DECREF(module);
    return NULL;
  }
  return module;
}
