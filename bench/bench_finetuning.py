"""Benchmark: fine-tuning the real all-MiniLM-L6-v2 on real sentences, ours vs Hugging Face.

The task, built here from the six Austen novels (bench/austen_corpus.py): which novel is this
sentence from? --num_train sentences per novel for training (9,000 in all by default) and
--num_dev per novel for dev, drawn at random without overlap, at their natural lengths (at
least --min_words words; median about 20 WordPieces), max_seq_length 128, 1 epoch.

Both sides start from the same weights (MiniLM's, and the same initial classifier head) and
use the same hyperparameters: batch 32, --learning_rate (5e-5) with 10% linear warm-up then
linear decay, weight decay 0.01 (not on biases and LayerNorm), epsilon 1e-6, gradient clipping at
global norm 1.0, dropout 0.1, the same number of optimizer steps.
  * ours: run_classifier's path: the tsv task's processor, classifier_features, the Trainer of
    finetuning.make_trainer (Google's AdamWeightDecay) trained by finetuning.train, which
    groups examples by length and cuts each batch to a bucket length (bert/length_buckets.py);
    dev predictions by finetuning.predict (sorted by length, outputs in input order).
  * Hugging Face, as its fine-tuning docs train in native PyTorch: the fast tokenizer,
    DataCollatorWithPadding (each shuffled batch padded to its longest), torch AdamW and
    get_linear_schedule_with_warmup, BertForSequenceClassification.
Optimizer differences that stay: Google's Adam has no bias correction, torch's AdamW has, so
at one rate Google's updates are larger (the README's table of accuracy by rate).

The sides alternate within the one epoch: after every --steps_per_round of our optimizer
steps (our loop, unchanged, calls back) the peer runs as many of its own. Each side's time is
its tokenization plus its training steps, first-step tracing and warm-up included (users pay
them too); examples/s = training examples / that time. Dev accuracy is then measured on both.
--order=random trains ours on shuffled batches (each cut to its bucket length) instead of
length groups: run both to measure what grouping does to accuracy.

Usage: .venv/bin/python bench/bench_finetuning.py [--num_train 1500] [--use_xla] [--order random]
Last line: `finetune_speedup_vs_hf=X ours_accuracy=A peer_accuracy=B ...`.
Needs bench/requirements.txt (torch CPU, transformers); never a runtime dependency.
"""
import argparse
import os
import pathlib
import random
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import austen_corpus
import common

from bert import training

BATCH = 32
MAX_SEQ_LENGTH = 128
WARMUP_PROPORTION = 0.1
WEIGHT_DECAY = 0.01
EPSILON = 1e-6
CLIP_NORM = 1.0
EVAL_BATCH = 64


def write_novel_split(folder: pathlib.Path, num_train: int, num_dev: int, min_words: int,
                      seed: int = 0) -> tuple[list, list]:
  """train.tsv and dev.tsv of `novel<TAB>sentence` rows, num_train and num_dev sentences per
  novel, drawn without overlap; train shuffled. Returns (train, dev) as [(novel, sentence)]."""
  rng = random.Random(seed)
  train, dev = [], []
  for novel, sentences in austen_corpus.novel_sentences(min_words).items():
    if len(sentences) < num_train + num_dev:
      raise ValueError(f"{novel} has {len(sentences)} sentences of >= {min_words} words, "
                       f"fewer than {num_train} + {num_dev}")
    sentences = list(sentences)
    rng.shuffle(sentences)
    train += [(novel, s) for s in sentences[:num_train]]
    dev += [(novel, s) for s in sentences[num_train:num_train + num_dev]]
  rng.shuffle(train)
  for name, rows in (("train", train), ("dev", dev)):
    (folder / f"{name}.tsv").write_text("".join(f"{n}\t{s}\n" for n, s in rows),
                                        encoding="utf-8")
  return train, dev


class PeerAlternation(training.Callback):
  """A training Callback that runs `steps_per_round` peer steps before every
  `steps_per_round`-th of our optimizer steps, `num_steps` in all, and times them."""

  def __init__(self, peer_step, steps_per_round: int, num_steps: int):
    self.peer_step = peer_step
    self.steps_per_round = steps_per_round
    self.num_steps = num_steps
    self.peer_seconds = 0.0
    self.peer_steps_done = 0

  def run_peer(self, num_steps: int) -> None:
    start = time.perf_counter()
    for _ in range(num_steps):
      self.peer_step()
    self.peer_steps_done += num_steps
    self.peer_seconds += time.perf_counter() - start

  def on_train_begin(self, trainer, step):
    self._start = time.perf_counter()

  def on_step_begin(self, trainer, step, features):
    if step % self.steps_per_round == 0:
      self.run_peer(min(self.steps_per_round, self.num_steps - self.peer_steps_done))
    if step and step % 50 == 0:
      elapsed = time.perf_counter() - self._start
      print(f"  step {step}/{self.num_steps}: {elapsed:.0f} s, of which the peer "
            f"{self.peer_seconds:.0f} s; ETA {elapsed / step * (self.num_steps - step):.0f} s",
            flush=True)


# ---------------------------------------------------------------------------------- ours

def our_tokenization(data_dir, labels):
  """run_classifier's reading and features: (train arrays, dev arrays, seconds)."""
  import tokenization
  from bert import classifier_data
  from bert import classifier_features
  start = time.perf_counter()
  processor = classifier_data.get_processor("tsv", label_list=labels, text_a_column=1,
                                            label_column=0)
  tokenizer = tokenization.create_tokenizer(str(common.minilm_dir() / "vocab.txt"), None, True)
  train = classifier_features.convert_examples_to_features(
      processor.get_train_examples(str(data_dir)), labels, MAX_SEQ_LENGTH, tokenizer)
  seconds = time.perf_counter() - start
  dev = classifier_features.convert_examples_to_features(
      processor.get_dev_examples(str(data_dir)), labels, MAX_SEQ_LENGTH, tokenizer)
  return train, dev, seconds


def our_trainer(output_dir, num_labels, num_train_examples, learning_rate, use_xla):
  """finetuning.make_trainer of run_classifier, from MiniLM's Hugging Face folder."""
  import modeling
  from bert import finetuning
  from bert import run_setup
  from bert import task_models
  options = run_setup.TrainingOptions(
      output_dir=str(output_dir), learning_rate=learning_rate, train_batch_size=BATCH,
      max_seq_length=MAX_SEQ_LENGTH, init_checkpoint=str(common.minilm_dir()), use_xla=use_xla,
      save_checkpoints_steps=10 ** 9, log_freq=50)
  world, precision = run_setup.start_run(options)
  config = modeling.BertConfig.from_json_file(str(common.minilm_dir() / "config.json"))
  model = task_models.BertClassifier(config, num_labels)
  num_train_steps, num_warmup_steps = finetuning.train_steps(
      num_train_examples, BATCH, 1.0, WARMUP_PROPORTION)
  trainer = run_setup.build_trainer(model, task_models.classifier_loss_fn, world, precision,
                                    options, num_train_steps, num_warmup_steps)
  finetuning.restore_or_init(trainer, task_models.CLASSIFIER_HEAD, options)
  return trainer, options, world


def random_order_steps(arrays, seed):
  """--order=random: one epoch's shuffled batches, each cut to its bucket length (what
  finetuning.train_dataset does, without the grouping), stacked as the Trainer wants."""
  import numpy as np
  import tensorflow as tf

  from bert import length_buckets
  lengths = length_buckets.sequence_lengths(arrays["input_mask"])
  order = np.random.default_rng(seed).permutation(len(lengths))

  def steps():
    for start in range(0, len(order) - BATCH + 1, BATCH):
      indices = order[start:start + BATCH]
      length = length_buckets.padded_length(int(lengths[indices].max()), MAX_SEQ_LENGTH)
      yield {name: value[None] for name, value in
             length_buckets.take(arrays, indices, length).items()}

  signature = {name: tf.TensorSpec((1, BATCH) + ((None,) if value.ndim >= 2 else ()),
                                   value.dtype) for name, value in arrays.items()}
  return tf.data.Dataset.from_generator(steps, output_signature=signature).prefetch(2)


def our_predictions(model, dev_arrays, use_xla):
  """Predicted labels of the dev features, by run_classifier's finetuning.predict."""
  from bert import finetuning
  return finetuning.predict(model, dev_arrays, EVAL_BATCH, use_xla).argmax(axis=1)


# ---------------------------------------------------------------------------------- peer

def peer_tokenization(train_rows, labels):
  """The fast tokenizer on the training sentences: (tokenizer, encoded rows, seconds)."""
  import transformers
  start = time.perf_counter()
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(common.minilm_dir()))
  encoded = tokenizer([s for _, s in train_rows], truncation=True, max_length=MAX_SEQ_LENGTH)
  label_ids = [labels.index(n) for n, _ in train_rows]
  rows = [{"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": label}
          for ids, types, mask, label in zip(encoded["input_ids"], encoded["token_type_ids"],
                                              encoded["attention_mask"], label_ids)]
  return tokenizer, rows, time.perf_counter() - start


def peer_model(our_model, num_labels):
  """BertForSequenceClassification from MiniLM, its classifier set to our initial head."""
  import torch
  import transformers
  transformers.logging.set_verbosity_error()  # the "newly initialized classifier" notice
  model = transformers.BertForSequenceClassification.from_pretrained(
      str(common.minilm_dir()), num_labels=num_labels)
  weights = {v.path: v.numpy() for v in our_model.weights}
  with torch.no_grad():
    model.classifier.weight.copy_(torch.from_numpy(weights["output_weights"]))
    model.classifier.bias.copy_(torch.from_numpy(weights["output_bias"]))
  return model


def peer_training(model, tokenizer, rows, learning_rate, num_train_steps, num_warmup_steps,
                  seed):
  """Returns step(): one optimizer step of the docs' native PyTorch loop."""
  import torch
  import transformers
  torch.manual_seed(seed)
  collator = transformers.DataCollatorWithPadding(tokenizer)
  loader = torch.utils.data.DataLoader(rows, batch_size=BATCH, shuffle=True,
                                       collate_fn=collator, drop_last=True)
  no_decay = ("bias", "LayerNorm.weight")
  groups = [
      {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
       "weight_decay": WEIGHT_DECAY},
      {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
       "weight_decay": 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=learning_rate, eps=EPSILON)
  scheduler = transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps,
                                                           num_train_steps)
  batches = iter(loader)
  model.train()

  def step():
    batch = next(batches)
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()

  return step


def peer_predictions(model, tokenizer, dev_rows):
  """Predicted labels of the dev sentences, batches in file order padded to their longest."""
  import numpy as np
  import torch
  import transformers
  model.eval()
  encoded = tokenizer([s for _, s in dev_rows], truncation=True, max_length=MAX_SEQ_LENGTH)
  rows = [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]
  loader = torch.utils.data.DataLoader(rows, batch_size=EVAL_BATCH,
                                       collate_fn=transformers.DataCollatorWithPadding(tokenizer))
  predictions = []
  with torch.inference_mode():
    for batch in loader:
      predictions.append(model(**batch).logits.argmax(dim=1).numpy())
  return np.concatenate(predictions)


# ---------------------------------------------------------------------------------- main

def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_train", type=int, default=1500, help="training sentences/novel")
  parser.add_argument("--num_dev", type=int, default=300, help="dev sentences per novel")
  parser.add_argument("--min_words", type=int, default=4)
  parser.add_argument("--learning_rate", type=float, default=5e-5)
  parser.add_argument("--steps_per_round", type=int, default=10)
  parser.add_argument("--use_xla", action="store_true", help="our side with --use_xla")
  parser.add_argument("--order", choices=("grouped", "random"), default="grouped",
                      help="our training order: length groups (the default) or shuffled")
  parser.add_argument("--no_hf", action="store_true", help="ours only (no speed-up)")
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--threads", type=int, default=common.default_num_threads())
  args = parser.parse_args()
  common.configure_threads(args.threads)
  import numpy as np

  from bert import finetuning
  from bert import length_buckets

  # Per side: [tokenize seconds, train seconds, dev predictions, dev seconds per round].
  sides = {}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    train_rows, dev_rows = write_novel_split(tmp, args.num_train, args.num_dev, args.min_words)
    labels = sorted({n for n, _ in train_rows})
    train_arrays, dev_arrays, tokenize_s = our_tokenization(tmp, labels)
    sides["ours"] = [tokenize_s, None, None, []]
    lengths = length_buckets.sequence_lengths(train_arrays["input_mask"])
    print(f"Austen novel classification: {len(train_rows)} training and {len(dev_rows)} dev "
          f"sentences, {len(labels)} novels; WordPieces per training example (with [CLS] "
          f"[SEP]): median {np.median(lengths):.0f}, 90th percentile "
          f"{np.percentile(lengths, 90):.0f}, max {lengths.max()}; max_seq_length "
          f"{MAX_SEQ_LENGTH}; {args.threads} threads; {common.load_report()}", flush=True)

    trainer, options, world = our_trainer(tmp / "ours", len(labels), len(train_rows),
                                          args.learning_rate, args.use_xla)
    num_train_steps = trainer.config.num_train_steps
    alternation = None
    if not args.no_hf:
      tokenizer, peer_rows, tokenize_s = peer_tokenization(train_rows, labels)
      sides["hf_torch"] = [tokenize_s, None, None, []]
      hf_model = peer_model(trainer.model, len(labels))
      alternation = PeerAlternation(
          peer_training(hf_model, tokenizer, peer_rows, args.learning_rate, num_train_steps,
                        int(num_train_steps * WARMUP_PROPORTION), args.seed),
          args.steps_per_round, num_train_steps)
      trainer.callbacks.append(alternation)
    start = time.perf_counter()
    if args.order == "grouped":
      finetuning.train(trainer, train_arrays, world, options)
    else:
      trainer.train(random_order_steps(train_arrays, args.seed))
    # Ours: the whole call (input, tracing, steps, the final checkpoint) but the peer's steps.
    sides["ours"][1] = time.perf_counter() - start
    if alternation:
      sides["ours"][1] -= alternation.peer_seconds
      alternation.run_peer(num_train_steps - alternation.peer_steps_done)
      sides["hf_torch"][1] = alternation.peer_seconds

    predict = {"ours": lambda: our_predictions(trainer.model, dev_arrays, args.use_xla),
               "hf_torch": lambda: peer_predictions(hf_model, tokenizer, dev_rows)}
    for _ in range(2):  # the first round warms up (traces, allocates); the second is timed
      for side in sides:
        start = time.perf_counter()
        sides[side][2] = predict[side]()
        sides[side][3].append(time.perf_counter() - start)

  dev_labels = np.array([labels.index(n) for n, _ in dev_rows])
  rows, result = [], {}
  for side, (tokenize_s, train_s, predictions, dev_seconds) in sides.items():
    examples_per_s = len(train_rows) / (tokenize_s + train_s)
    accuracy = 100 * float(np.mean(predictions == dev_labels))
    result[side] = (examples_per_s, accuracy)
    rows.append([side, f"{tokenize_s:.1f}", f"{train_s:.1f}", f"{examples_per_s:.1f}",
                 f"{len(dev_rows) / dev_seconds[-1]:.0f}", f"{accuracy:.2f}%"])
  order = ("length groups" if args.order == "grouped" else "shuffled") + (
      ", XLA" if args.use_xla else "")
  print(f"{num_train_steps} optimizer steps of {BATCH} at learning rate {args.learning_rate:g}; "
        f"ours: {order}"
        + ("" if args.no_hf else f"; the sides alternate every {args.steps_per_round} steps"))
  print(common.format_table(["side", "tokenize_s", "train_s", "train_examples/s",
                             "dev_examples/s", "dev_accuracy"], rows))
  line = f"ours_examples_per_s={result['ours'][0]:.1f} ours_accuracy={result['ours'][1]:.2f}"
  if "hf_torch" in result:
    line = (f"finetune_speedup_vs_hf={result['ours'][0] / result['hf_torch'][0]:.2f} {line} "
            f"peer_examples_per_s={result['hf_torch'][0]:.1f} "
            f"peer_accuracy={result['hf_torch'][1]:.2f}")
  print(line)


if __name__ == "__main__":
  main()
