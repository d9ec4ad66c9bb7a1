"""Google's create_pretraining_data algorithm, plain: one process, everything in memory.

The baseline for bench/bench_pretraining_data.py and the statistical reference for
tests/test_create_pretraining_data.py. It follows google-research/bert's script step by step
(tokens as strings, Python's `random.Random`, one global shuffle, `tf.train.Example` protos and
`tf.io.TFRecordWriter`), so its speed and memory are what that script costs.
"""

import collections
import dataclasses
import random


@dataclasses.dataclass
class TrainingInstance:
  tokens: list[str]
  segment_ids: list[int]
  masked_lm_positions: list[int]
  masked_lm_labels: list[str]
  is_random_next: bool


def read_documents(input_files, tokenizer) -> list[list[list[str]]]:
  """One sentence per line, blank lines between documents -> documents of token lists."""
  all_documents = [[]]
  for input_file in input_files:
    with open(input_file, encoding="utf-8") as reader:
      for line in reader:
        line = line.strip()
        if not line:
          all_documents.append([])
        tokens = tokenizer.tokenize(line)
        if tokens:
          all_documents[-1].append(tokens)
  return [document for document in all_documents if document]


def create_training_instances(all_documents, vocab_words, max_seq_length, dupe_factor,
                              short_seq_prob, masked_lm_prob, max_predictions_per_seq, rng,
                              do_whole_word_mask=False) -> list[TrainingInstance]:
  """All dupes of all documents, globally shuffled (documents are shuffled first, as Google's)."""
  all_documents = list(all_documents)
  rng.shuffle(all_documents)
  instances = []
  for _ in range(dupe_factor):
    for document_index in range(len(all_documents)):
      instances.extend(create_instances_from_document(
          all_documents, document_index, max_seq_length, short_seq_prob, masked_lm_prob,
          max_predictions_per_seq, vocab_words, rng, do_whole_word_mask))
  rng.shuffle(instances)
  return instances


def create_instances_from_document(all_documents, document_index, max_seq_length,
                                   short_seq_prob, masked_lm_prob, max_predictions_per_seq,
                                   vocab_words, rng, do_whole_word_mask=False):
  document = all_documents[document_index]
  max_num_tokens = max_seq_length - 3
  target_seq_length = max_num_tokens
  if rng.random() < short_seq_prob:
    target_seq_length = rng.randint(2, max_num_tokens)
  instances = []
  current_chunk, current_length = [], 0
  i = 0
  while i < len(document):
    segment = document[i]
    current_chunk.append(segment)
    current_length += len(segment)
    if i == len(document) - 1 or current_length >= target_seq_length:
      if current_chunk:
        a_end = 1
        if len(current_chunk) >= 2:
          a_end = rng.randint(1, len(current_chunk) - 1)
        tokens_a = [token for segment in current_chunk[:a_end] for token in segment]
        tokens_b = []
        if len(current_chunk) == 1 or rng.random() < 0.5:
          is_random_next = True
          target_b_length = target_seq_length - len(tokens_a)
          for _ in range(10):
            random_document_index = rng.randint(0, len(all_documents) - 1)
            if random_document_index != document_index:
              break
          random_document = all_documents[random_document_index]
          random_start = rng.randint(0, len(random_document) - 1)
          for j in range(random_start, len(random_document)):
            tokens_b.extend(random_document[j])
            if len(tokens_b) >= target_b_length:
              break
          i -= len(current_chunk) - a_end  # Put the unused segments back.
        else:
          is_random_next = False
          for segment in current_chunk[a_end:]:
            tokens_b.extend(segment)
        truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
        assert tokens_a and tokens_b
        tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
        segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
        tokens, positions, labels = create_masked_lm_predictions(
            tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
            do_whole_word_mask)
        instances.append(TrainingInstance(tokens, segment_ids, positions, labels,
                                          is_random_next))
      current_chunk, current_length = [], 0
    i += 1
  return instances


def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words,
                                 rng, do_whole_word_mask=False):
  cand_indexes = []
  for i, token in enumerate(tokens):
    if token in ("[CLS]", "[SEP]"):
      continue
    if do_whole_word_mask and cand_indexes and token.startswith("##"):
      cand_indexes[-1].append(i)
    else:
      cand_indexes.append([i])
  rng.shuffle(cand_indexes)
  output_tokens = list(tokens)
  num_to_predict = min(max_predictions_per_seq,
                       max(1, int(round(len(tokens) * masked_lm_prob))))
  masked = []  # (index, label)
  covered = set()
  for index_set in cand_indexes:
    if len(masked) >= num_to_predict:
      break
    if len(masked) + len(index_set) > num_to_predict:
      continue
    if any(index in covered for index in index_set):
      continue
    for index in index_set:
      covered.add(index)
      if rng.random() < 0.8:
        masked_token = "[MASK]"
      elif rng.random() < 0.5:
        masked_token = tokens[index]
      else:
        masked_token = vocab_words[rng.randint(0, len(vocab_words) - 1)]
      output_tokens[index] = masked_token
      masked.append((index, tokens[index]))
  masked.sort()
  return output_tokens, [m[0] for m in masked], [m[1] for m in masked]


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
  while len(tokens_a) + len(tokens_b) > max_num_tokens:
    trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    if rng.random() < 0.5:
      del trunc_tokens[0]
    else:
      trunc_tokens.pop()


def write_instances(instances, tokenizer, max_seq_length, max_predictions_per_seq,
                    output_files) -> int:
  """Google's write_instance_to_example_files: tf.train.Example per instance, round-robin."""
  import tensorflow as tf
  writers = [tf.io.TFRecordWriter(path) for path in output_files]

  def int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

  writer_index = 0
  for instance in instances:
    input_ids = tokenizer.convert_tokens_to_ids(instance.tokens)
    input_mask = [1] * len(input_ids)
    segment_ids = list(instance.segment_ids)
    padding = max_seq_length - len(input_ids)
    input_ids += [0] * padding
    input_mask += [0] * padding
    segment_ids += [0] * padding
    positions = list(instance.masked_lm_positions)
    ids = tokenizer.convert_tokens_to_ids(instance.masked_lm_labels)
    weights = [1.0] * len(ids)
    padding = max_predictions_per_seq - len(positions)
    positions += [0] * padding
    ids += [0] * padding
    weights += [0.0] * padding
    features = collections.OrderedDict()
    features["input_ids"] = int_feature(input_ids)
    features["input_mask"] = int_feature(input_mask)
    features["segment_ids"] = int_feature(segment_ids)
    features["masked_lm_positions"] = int_feature(positions)
    features["masked_lm_ids"] = int_feature(ids)
    features["masked_lm_weights"] = tf.train.Feature(float_list=tf.train.FloatList(value=weights))
    features["next_sentence_labels"] = int_feature([1 if instance.is_random_next else 0])
    example = tf.train.Example(features=tf.train.Features(feature=features))
    writers[writer_index].write(example.SerializeToString())
    writer_index = (writer_index + 1) % len(writers)
  for writer in writers:
    writer.close()
  return len(instances)


def run(input_files, output_files, vocab_file, do_lower_case=True, max_seq_length=128,
        max_predictions_per_seq=20, random_seed=12345, dupe_factor=10, masked_lm_prob=0.15,
        short_seq_prob=0.1, do_whole_word_mask=False) -> int:
  """The whole script: returns the number of instances written."""
  import tokenization
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
  rng = random.Random(random_seed)
  documents = read_documents(input_files, tokenizer)
  instances = create_training_instances(
      documents, list(tokenizer.vocab.keys()), max_seq_length, dupe_factor, short_seq_prob,
      masked_lm_prob, max_predictions_per_seq, rng, do_whole_word_mask)
  return write_instances(instances, tokenizer, max_seq_length, max_predictions_per_seq,
                         output_files)
