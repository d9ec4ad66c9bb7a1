"""Tests for tokenization.py: Google's algorithm, the fast paths' exactness (C and in-graph),
SentencePiece."""
import gzip

import numpy as np
import pytest
import tensorflow as tf

import tokenization
from bert import graph_tokenizer

# (name, text): every edge case the fast path must reproduce exactly, cased and uncased.
EDGE_CASES = [
    ("empty", ""),
    ("whitespace_only", " \t\n\r \u3000\u00a0 "),
    ("ascii_sentence", "Hello, World! It's 5 o'clock."),
    ("nul_and_replacement", "a\x00b\ufffdc"),
    ("ascii_controls", "x\x01\x07\x08\x0b\x0c\x1b\x1f\x7fy"),
    ("c1_controls", "x\x80\x85\x9fy"),
    ("tab_newline_cr", "one\ttwo\nthree\rfour"),
    ("zero_width", "zero\u200bwidth\u200cjoin\u200dmark\u2060er\ufeffend"),
    ("format_chars", "bidi\u202a\u202etext\u00adsoft\u2066iso"),
    ("line_separators", "line\u2028para\u2029end"),
    ("unicode_spaces", "a\u2000b\u2003c\u202fd\u205fe\u1680f"),
    ("cjk", "\u4e2d\u6587\u5b57\u7b26 and \u65e5\u672c\u8a9e\u3067\u3059"),
    ("cjk_compat", "\uf900\uf901 \U0002f800 \U00020000\U0002a700"),
    ("hangul", "\ud55c\uad6d\uc5b4 \ud14c\uc2a4\ud2b8"),
    ("accents_precomposed",
     "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u00d1and\u00fa"),
    ("accents_combining", "Cafe\u0301 nai\u0308ve \u1e9b\u0323 a\u0328\u0301"),
    ("ascii_symbols", "$5+3<4=>2^8`x|y~z"),
    ("unicode_punctuation",
     "\u00bfQu\u00e9? \u00abok\u00bb \u2014 \u201cquote\u201d \u2026 \u3002\u300c\u300d"),
    ("symbols_not_punctuation", "\u00a9 \u00ae \u20ac100 \u00b0C \u00bd \u2122 \u221e"),
    ("emoji", "emoji \U0001f600\U0001f44d\U0001f3fd \u2764\ufe0f \U0001f468\u200d\U0001f469"),
    ("mixed_scripts", "\u041f\u0440\u0438\u0432\u0435\u0442 \u03ba\u03cc\u03c3\u03bc\u03b5 "
                      "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd "
                      "\u0928\u092e\u0938\u094d\u0924\u0947"),
    ("greek_final_sigma", "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3. \u03a3"),
    ("casing_specials", "\u0130stanbul STRASSE Stra\u00dfe \ufb03 \u01c5 \u1e9e \u13a0"),
    ("continuations", "unaffable unwanted running playing"),
    ("long_word_200", "a" * 200),
    ("long_word_201", "b" * 201 + " ok"),
    ("long_word_with_punct", "c" * 150 + "." + "d" * 150),
    ("long_accented_word", "\u00e9" * 201),
    ("long_hangul_word", "\ud55c" * 80),
    ("special_tokens_text", "[CLS] hello [SEP] [MASK] [UNK] [PAD]"),
    ("private_use_unassigned", "x\ue000y \U000f0000 z\U000e0001\U000e0041"),
    ("musical_reordering", "a\U0001d165\U0001d16d\U0001d166b"),
    ("invalid_surrogate_free_mix", "mix\u00e9d \u4e2d t\u00ebxt\u2026 \u00bd \u0130"),
]


@pytest.fixture(scope="module")
def cased_vocab(uncased_vocab, tmp_path_factory):
  """The uncased vocab plus the capitalised form of each alphabetic word: a cased vocab."""
  tokens = uncased_vocab.read_text(encoding="utf-8").splitlines()
  present = set(tokens)
  extra = []
  for token in tokens:
    if token.isalpha() and token.islower() and token.capitalize() not in present:
      extra.append(token.capitalize())
      present.add(token.capitalize())
  extra += [c for c in ("\u00c9", "##\u00e9", "\u00c5", "\u00d1") if c not in present]
  path = tmp_path_factory.mktemp("cased") / "vocab.txt"
  path.write_text("\n".join(tokens + extra) + "\n", encoding="utf-8")
  return path


@pytest.fixture(scope="module")
def tokenizers(uncased_vocab, cased_vocab):
  return {
      True: tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True),
      False: tokenization.FullTokenizer(str(cased_vocab), do_lower_case=False),
  }


def python_ids(tokenizer, text):
  return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))


# ---------------------------------------------------------------- Google's algorithm itself.


def test_basic_tokenizer_lower_and_cased():
  text = " \tHeLLo!how  \n Are yoU?  "
  assert tokenization.BasicTokenizer(True).tokenize(text) == [
      "hello", "!", "how", "are", "you", "?"]
  assert tokenization.BasicTokenizer(False).tokenize(text) == [
      "HeLLo", "!", "how", "Are", "yoU", "?"]


def test_accents_stripped_only_when_lower_casing():
  assert tokenization.BasicTokenizer(True).tokenize("H\u00e9ll\u00f2 Cafe\u0301") == [
      "hello", "cafe"]
  assert tokenization.BasicTokenizer(False).tokenize("H\u00e9ll\u00f2") == ["H\u00e9ll\u00f2"]


def test_cjk_split_one_by_one_but_not_kana_or_hangul():
  assert tokenization.BasicTokenizer(False).tokenize("ah\u535a\u63a8zz") == [
      "ah", "\u535a", "\u63a8", "zz"]
  assert tokenization.BasicTokenizer(False).tokenize("\u3067\u3059\ud55c\uad6d") == [
      "\u3067\u3059\ud55c\uad6d"]


def test_controls_removed_whitespace_normalised():
  tokenizer = tokenization.BasicTokenizer(False)
  assert tokenizer.tokenize("a\x00b\ufffdc\u200bd\x7fe") == ["abcde"]
  assert tokenizer.tokenize("a\tb\nc\rd\u3000e\u2028f") == ["a", "b", "c", "d", "e", "f"]


def test_punctuation_split_unicode_and_ascii_symbols():
  assert tokenization.BasicTokenizer(False).tokenize("$a+b<c\u00bfd\u2014e\u20acf") == [
      "$", "a", "+", "b", "<", "c", "\u00bf", "d", "\u2014", "e\u20acf"]


def test_final_sigma_follows_python_lower():
  assert tokenization.BasicTokenizer(True).tokenize("\u039f\u0394\u039f\u03a3 \u03a3") == [
      "\u03bf\u03b4\u03bf\u03c2", "\u03c3"]


def test_wordpiece_greedy_longest_match_and_unk():
  vocab = {t: i for i, t in enumerate(
      ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing"])}
  wordpiece = tokenization.WordpieceTokenizer(vocab=vocab)
  assert wordpiece.tokenize("") == []
  assert wordpiece.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
  assert wordpiece.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
  short = tokenization.WordpieceTokenizer(vocab=vocab, max_input_chars_per_word=5)
  assert short.tokenize("wanted want") == ["[UNK]", "want"]


def test_character_classes():
  assert tokenization._is_whitespace(" ") and tokenization._is_whitespace("\t")
  assert tokenization._is_whitespace("\u00a0") and not tokenization._is_whitespace("A")
  assert tokenization._is_control("\x05") and tokenization._is_control("\u200b")
  assert not tokenization._is_control("\t") and not tokenization._is_control("A")
  assert not tokenization._is_control(" ")
  assert tokenization._is_punctuation("-") and tokenization._is_punctuation("$")
  assert tokenization._is_punctuation("`") and tokenization._is_punctuation(".")
  assert tokenization._is_punctuation("\u00bf") and not tokenization._is_punctuation("A")
  assert not tokenization._is_punctuation(" ") and not tokenization._is_punctuation("\u20ac")


def test_full_tokenizer_round_trip(uncased_vocab):
  tokenizer = tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)
  tokens = tokenizer.tokenize("UNwant\u00e9d,running")
  assert tokens == ["unwanted", ",", "running"]
  assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(tokens)) == tokens
  assert tokenizer.tokenize(b"caf\xc3\xa9") == ["cafe"]


def test_load_vocab_rejects_duplicates_naming_file_and_line(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("[PAD]\n[UNK]\nhello\nhello\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"vocab.txt:4: token 'hello' already appeared on line 3"):
    tokenization.load_vocab(str(path))


def test_convert_to_unicode_and_errors():
  assert tokenization.convert_to_unicode(b"caf\xc3\xa9\xff") == "caf\u00e9"
  assert tokenization.printable_text("x") == "x"
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.convert_to_unicode(3)
  assert tokenization.whitespace_tokenize("  a b\n") == ["a", "b"]
  assert tokenization.whitespace_tokenize("   ") == []


def test_validate_case_matches_checkpoint():
  tokenization.validate_case_matches_checkpoint(True, "x/uncased_L-12_H-768_A-12/bert_model.ckpt")
  tokenization.validate_case_matches_checkpoint(False, "x/cased_L-12_H-768_A-12/bert_model.ckpt")
  tokenization.validate_case_matches_checkpoint(True, "x/my_model/bert_model.ckpt")
  tokenization.validate_case_matches_checkpoint(True, None)
  with pytest.raises(ValueError, match="do_lower_case=False"):
    tokenization.validate_case_matches_checkpoint(
        False, "x/uncased_L-12_H-768_A-12/bert_model.ckpt")
  with pytest.raises(ValueError, match="do_lower_case=True"):
    tokenization.validate_case_matches_checkpoint(True, "x/cased_L-24_H-1024_A-16/bert_model.ckpt")


def test_create_tokenizer_needs_exactly_one_source(uncased_vocab):
  assert isinstance(tokenization.create_tokenizer(vocab_file=str(uncased_vocab)),
                    tokenization.FullTokenizer)
  with pytest.raises(ValueError, match="exactly one"):
    tokenization.create_tokenizer()
  with pytest.raises(ValueError, match="exactly one"):
    tokenization.create_tokenizer(vocab_file="a", spm_model_file="b")


# ----------------------------------------------------------- Fast path == Python, exactly.


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_edge_cases_fast_equals_python(tokenizers, do_lower_case):
  tokenizer = tokenizers[do_lower_case]
  texts = [text for _, text in EDGE_CASES]
  expected = [python_ids(tokenizer, text) for text in texts]
  assert tokenizer.tokenize_to_ids(texts) == expected
  # One at a time as well: context-dependent texts alone take the Python path.
  for (name, text), ids in zip(EDGE_CASES, expected):
    assert tokenizer.tokenize_to_ids([text]) == [ids], name


def test_batches_threads_and_python_rows_keep_order(tokenizers):
  tokenizer = tokenizers[True]
  texts = [text for _, text in EDGE_CASES] * 3
  expected = [python_ids(tokenizer, text) for text in texts]
  assert tokenizer.tokenize_to_ids(texts, batch_size=4, num_threads=2) == expected
  assert tokenizer.tokenize_to_ids([b"caf\xc3\xa9", "x"], num_threads=1) == [
      python_ids(tokenizer, "caf\u00e9"), python_ids(tokenizer, "x")]
  assert tokenizer.tokenize_to_ids([]) == []


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_in_graph_module_exact_except_documented_python_rows(tokenizers, do_lower_case):
  tokenizer = tokenizers[do_lower_case]
  module = graph_tokenizer.for_tokenizer(tokenizer)
  texts = [text for _, text in EDGE_CASES]
  python_rows = module.rows_needing_python(texts)
  names = {EDGE_CASES[i][0] for i in python_rows}
  assert names == ({"greek_final_sigma", "musical_reordering"} if do_lower_case else set())
  got = module(tf.constant(texts)).to_list()
  for i, (name, text) in enumerate(EDGE_CASES):
    if i not in python_rows:
      assert got[i] == python_ids(tokenizer, text), name


def test_expected_tokens_for_key_cases(tokenizers):
  uncased, cased = tokenizers[True], tokenizers[False]
  assert uncased.tokenize("b" * 201 + " ok") == ["[UNK]", "ok"]
  assert uncased.tokenize("a" * 200) != ["[UNK]"]
  assert cased.tokenize("Caf\u00e9") != uncased.tokenize("Caf\u00e9")
  assert uncased.tokenize("unaffable") == ["una", "##ffa", "##ble"]
  ids = uncased.tokenize_to_ids(["\u00c9T\u00c9 \U0001f600 \u4e2d\u6587"])[0]
  assert uncased.convert_ids_to_tokens(ids) == ["et", "##e", "[UNK]", "\u4e2d", "\u6587"]


def _vocab_covering(texts, do_lower_case):
  """A vocab holding every basic token of `texts` and its ## form, so that any difference in
  normalisation shows up as a different id instead of hiding behind [UNK]."""
  basic = tokenization.BasicTokenizer(do_lower_case)
  tokens = {"x", "y"}
  for text in texts:
    tokens.update(basic.tokenize(text))
  return ["[PAD]", "[UNK]"] + sorted(tokens) + sorted("##" + t for t in tokens)


def _assert_exact_in_graph(module, texts, vocab, do_lower_case):
  """The in-graph ids of every text equal Google's Python BasicTokenizer + WordPiece ones."""
  index = {t: i for i, t in enumerate(vocab)}
  basic = tokenization.BasicTokenizer(do_lower_case)
  wordpiece = tokenization.WordpieceTokenizer(index)
  got = module(tf.constant(texts)).to_list()
  mismatches = [
      text for text, ids in zip(texts, got)
      if ids != [index[p] for t in basic.tokenize(text) for p in wordpiece.tokenize(t)]]
  assert not mismatches, [ascii(t) for t in mismatches[:20]]


def _single_char_texts(chars):
  """Each character inside a word: shows deletion, splitting and normalisation alike."""
  return [f"x{c}y" for c in chars]


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_every_fast_bert_character_is_exact(do_lower_case):
  """Exhaustive: every character routed to FastBertTokenizer, alone and inside a word."""
  tables = graph_tokenizer._char_tables(do_lower_case)
  pattern = tables.fast_bert_class
  chars = [chr(cp) for low, high in ((0, 0x7F), *graph_tokenizer._FAST_BERT_BLOCKS)
           for cp in range(low, high + 1)
           if graph_tokenizer._fast_bert_safe(chr(cp), tables.table.get(chr(cp), chr(cp)),
                                           do_lower_case)]
  assert len(chars) > 80000  # ASCII, Latin, Greek, Cyrillic, ..., CJK, kana.
  # The module's routing class is exactly this set (no other block character, nothing else).
  block_chars = [chr(cp) for low, high in ((0, 0x7F), *graph_tokenizer._FAST_BERT_BLOCKS)
                 for cp in range(low, high + 1)]
  routed = tf.strings.regex_full_match(block_chars, pattern).numpy().tolist()
  assert [c for c, r in zip(block_chars, routed) if r] == chars
  assert not any(tf.strings.regex_full_match(
      ["\u2026", "\U0001f600", "\U000e0001", "\x00", "\U00030000"], pattern).numpy())
  # The ~90k CJK ideographs all take the same branch everywhere: every 16th and each range's
  # ends keep the test quick; every other character is checked.
  cjk_ends = {chr(end) for rng in tokenization.CJK_RANGES for end in rng}
  chars = [c for i, c in enumerate(chars)
           if not tokenization.is_chinese_char(ord(c)) or i % 16 == 0 or c in cjk_ends]
  texts = _single_char_texts(chars)
  vocab = _vocab_covering(texts, do_lower_case)
  module = graph_tokenizer.FastWordpieceIds(vocab, do_lower_case)
  assert bool(tf.reduce_all(tf.strings.regex_full_match(texts, pattern + "*")))
  _assert_exact_in_graph(module, texts, vocab, do_lower_case)


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_every_bmp_character_is_exact_in_graph(do_lower_case):
  """Exhaustive over the Basic Multilingual Plane, through whichever route the module picks."""
  python_only = graph_tokenizer._char_tables(do_lower_case).python_only
  chars = [chr(cp) for cp in range(1, 0x10000) if not 0xD800 <= cp <= 0xDFFF
           and not python_only.match(chr(cp))]
  texts = _single_char_texts(chars)
  vocab = _vocab_covering(texts, do_lower_case)
  module = graph_tokenizer.FastWordpieceIds(vocab, do_lower_case)
  _assert_exact_in_graph(module, texts, vocab, do_lower_case)


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_austen_corpus_fast_equals_python(tokenizers, austen_files, do_lower_case):
  tokenizer = tokenizers[do_lower_case]
  lines = []
  for path in austen_files:
    with gzip.open(path, "rt", encoding="utf-8") as f:
      lines.extend(f.read().splitlines())
  assert len(lines) > 50000
  fast = tokenizer.tokenize_to_ids(lines)
  assert fast == [python_ids(tokenizer, line) for line in lines]
  unk = tokenizer.vocab["[UNK]"]
  assert sum(ids.count(unk) for ids in fast) < 0.001 * sum(len(ids) for ids in fast)


def _tokenizer_for(tokens, tmp_path, do_lower_case, name="vocab.txt"):
  path = tmp_path / name
  path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  return tokenization.FullTokenizer(str(path), do_lower_case=do_lower_case)


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_every_character_is_exact_in_c(do_lower_case, tmp_path):
  """Exhaustive over the BMP, and every 16th character beyond it, through the C path: each
  character inside a word, with a vocab where any normalisation difference changes the ids."""
  cps = [cp for cp in range(1, 0x10000) if not 0xD800 <= cp <= 0xDFFF]
  cps += list(range(0x10000, 0x110000, 16)) + [0x1D165, 0x1D16D, 0xE0001, 0x10FFFF]
  texts = _single_char_texts(chr(cp) for cp in cps)
  tokenizer = _tokenizer_for(_vocab_covering(texts, do_lower_case), tmp_path, do_lower_case)
  got = tokenizer.tokenize_to_ids(texts)
  mismatches = [text for text, ids in zip(texts, got) if ids != python_ids(tokenizer, text)]
  assert not mismatches, [ascii(t) for t in mismatches[:20]]


# Characters whose handling interacts with their neighbours, for random strings.
_FUZZ_ALPHABET = ("aAbZ09 \t\n.,'#$-_~" "\u00e9\u00c9\u0301\u0308\u0323\u0328\u03a3\u03c3\u0130"
                  "\u00df\u4e2d\u6587\uf900\u3002\u2028\u00a0\u200b\x00\x85\ufffd\u00bd\u2026"
                  "\U0001d165\U0001d16d\U0001f600\ud55c\u0e01\u0e48\u05d0\u05b8")


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_random_strings_c_equals_python(tokenizers, do_lower_case):
  rng = np.random.default_rng(7)
  alphabet = np.array(list(_FUZZ_ALPHABET))
  texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 40))) for _ in range(3000)]
  texts += ["word" * rng.integers(40, 60) + "\u00e9" * int(rng.integers(0, 3))
            for _ in range(50)]  # Around the 200-character limit, in bytes and characters.
  tokenizer = tokenizers[do_lower_case]
  expected = [python_ids(tokenizer, text) for text in texts]
  assert tokenizer.tokenize_to_ids(texts, batch_size=97) == expected
  ids, counts = tokenizer.tokenize_to_id_arrays(texts)
  assert counts.tolist() == [len(row) for row in expected]
  assert ids.tolist() == [i for row in expected for i in row]
  assert ids.dtype == np.int32 and counts.dtype == np.int64


def test_c_wordpiece_vocab_corner_cases(tmp_path):
  """Greedy longest match over code points, "##" tokens, and ids past blank vocab lines."""
  tokens = ["[UNK]", "", "un", "##want", "##ed", "##", "###", "\u00e9t\u00e9", "##\u00e9",
            "x\U0001f600", "##\U0001f600", "a" * 30, "##" + "a" * 9]
  tokenizer = _tokenizer_for(tokens, tmp_path, do_lower_case=False)
  texts = ["unwanted unwantedX", "\u00e9t\u00e9\u00e9\u00e9 x\U0001f600\U0001f600",
           "a" * 57, "a" * 58, "## # ###", "", "[UNK]"]
  expected = [python_ids(tokenizer, text) for text in texts]
  assert tokenizer.tokenize_to_ids(texts) == expected
  assert expected[0] == [2, 3, 4, 0]
  assert expected[2] == [11, 12, 12, 12]  # 30 + 3 * 9 characters.
  assert expected[3] == [0]


def test_c_path_without_unk_token_behaves_like_python(tmp_path):
  tokenizer = _tokenizer_for(["hello", "world", "."], tmp_path, do_lower_case=True)
  assert tokenizer.tokenize_to_ids(["Hello world.", "world"]) == [[0, 1, 2], [1]]
  with pytest.raises(KeyError, match="UNK"):  # Google's convert_tokens_to_ids fails the same.
    tokenizer.tokenize_to_ids(["hello zebra"])


def test_batch_path_falls_back_to_python_with_a_warning(tokenizers, uncased_vocab, monkeypatch):
  monkeypatch.setattr(tokenization, "_wordpiece", None)
  monkeypatch.setattr(tokenization.FullTokenizer, "_warned_no_native", False)
  tokenizer = tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)
  texts = [text for _, text in EDGE_CASES]
  with pytest.warns(UserWarning, match="not built"):
    assert tokenizer.tokenize_to_ids(texts) == [python_ids(tokenizer, t) for t in texts]
  ids, counts = tokenizer.tokenize_to_id_arrays(texts)
  assert ids.tolist() == [i for t in texts for i in python_ids(tokenizer, t)]


def test_c_extension_is_built():
  """setup.sh builds native/; without it every batch path silently runs far slower."""
  assert tokenization._wordpiece is not None


def test_minilm_fixture_tokens(tokenizers, fixture_path):
  reference = np.load(fixture_path)
  tokenizer = tokenizers[True]
  for example, expected in zip(reference["examples"], reference["tokens"]):
    tokens = ["[CLS]"]
    for i, segment in enumerate(str(example).split(" ||| ")):
      tokens += tokenizer.tokenize(segment) + ["[SEP]"]
      assert i < 2
    assert len(tokens) <= 32
    assert " ".join(tokens) == str(expected)


def test_tf_tokenizer_survives_saved_model(tokenizers, tmp_path):
  tokenizer = tokenizers[True]
  # Raw bytes too: invalid UTF-8 (a stray byte, a cut sequence, an encoded surrogate) is
  # dropped in-graph exactly as convert_to_unicode drops it.
  texts = ["Hello, World!", "\u00c9t\u00e9 \u2026 \u4e2d\u6587", "", "a\x00b",
           b"caf\xc3\xa9 ab\xffcd \xe4\xb8 end", b"\xc3", b"x\xed\xa0\x80y"]
  tf.saved_model.save(graph_tokenizer.for_tokenizer(tokenizer), str(tmp_path / "tokenizer"))
  restored = tf.saved_model.load(str(tmp_path / "tokenizer"))
  got = restored(tf.constant(texts))
  assert got.to_list() == [python_ids(tokenizer, t) for t in texts]

  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(restored)
  assert [row for batch in dataset for row in batch.to_list()] == got.to_list()


# --------------------------------------------------------------------------- SentencePiece.


@pytest.fixture(scope="module")
def spm_model(austen_files, tmp_path_factory):
  import sentencepiece
  with gzip.open(austen_files[0], "rt", encoding="utf-8") as f:
    lines = [line for line in f.read().splitlines() if line.strip()][:3000]
  prefix = tmp_path_factory.mktemp("spm") / "sp"
  sentencepiece.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_prefix=str(prefix), vocab_size=600,
      pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece="[PAD]", unk_piece="[UNK]",
      user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], character_coverage=1.0, minloglevel=2,
      num_threads=1)
  return str(prefix) + ".model", lines


@pytest.mark.parametrize("do_lower_case", [False, True], ids=["cased", "uncased"])
def test_sentencepiece_round_trip(spm_model, do_lower_case):
  model_file, lines = spm_model
  tokenizer = tokenization.create_tokenizer(spm_model_file=model_file,
                                            do_lower_case=do_lower_case)
  assert isinstance(tokenizer, tokenization.SentencePieceTokenizer)
  texts = lines[:500] + ["Emma [MASK] Woodhouse [SEP] \u00e9t\u00e9 \U0001f600", ""]
  ids = tokenizer.tokenize_to_ids(texts)
  assert ids == [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]
  assert graph_tokenizer.for_tokenizer(tokenizer)(tf.constant(texts)).to_list() == ids
  for text, row in zip(lines[:500], ids):
    expected = " ".join(text.split())
    decoded = tokenizer.sp_model.decode(row)
    assert decoded == (expected.lower() if do_lower_case else expected)
  special = tokenizer.convert_tokens_to_ids(list(tokenization.SPECIAL_TOKENS))
  assert special == [0, 1, 2, 3, 4]
  assert tokenizer.convert_ids_to_tokens(special) == list(tokenization.SPECIAL_TOKENS)
  pieces = tokenizer.tokenize(texts[500])
  assert "[MASK]" in pieces and "[SEP]" in pieces and "[UNK]" in pieces


def test_sentencepiece_model_without_special_tokens_is_rejected(austen_files, tmp_path):
  import sentencepiece
  with gzip.open(austen_files[0], "rt", encoding="utf-8") as f:
    lines = [line for line in f.read().splitlines() if line.strip()][:2000]
  sentencepiece.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_prefix=str(tmp_path / "plain"), vocab_size=300,
      minloglevel=2, num_threads=1)
  with pytest.raises(ValueError, match=r"plain.model: .*lacks the special tokens"):
    tokenization.SentencePieceTokenizer(str(tmp_path / "plain.model"))
  (tmp_path / "junk.model").write_bytes(b"not a model")
  with pytest.raises(ValueError, match="junk.model: not a sentencepiece model"):
    tokenization.SentencePieceTokenizer(str(tmp_path / "junk.model"))
