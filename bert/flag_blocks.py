"""absl flag blocks that several scripts define alike, and the options dataclasses they fill.

* `define_tokenizer_flags`: --vocab_file, --spm_model_file, --do_lower_case (the fine-tuning
  scripts, extract_features.py, inference.py).
* `define_training_flags`: run_pretraining.py's training block (the ROCm fork's --use_horovod,
  --optimizer_type, --auto_mixed_precision; NVIDIA's --num_accumulation_steps,
  --allreduce_post_accumulation, --use_xla, --fp16_allreduce, --precision, --log_freq,
  --keep_checkpoint_max, --seed; Google's --iterations_per_loop; --strict_init_checkpoint),
  which every fine-tuning script defines too, so each flag means the same everywhere.
* `define_finetuning_flags`: Google's flags common to run_classifier and run_squad, the
  training block and --pad_to_max_length.
* `define_padding_flag`: --pad_to_max_length (Hugging Face's name), for every script that
  batches examples: fine-tuning, extract_features.py, inference.py.
* `options_from_flags`: a script's parsed flags -> an options dataclass whose fields are
  named as the flags (bert.run_setup.TrainingOptions). Only the scripts call it, with their
  FLAGS: nothing in this package reads flags by itself.

Importing this module and defining its flags does not import TensorFlow: run_pretraining.py
parses its flags before paying for TensorFlow.
"""
import dataclasses

from absl import flags


def define_tokenizer_flags() -> None:
  """--vocab_file, --spm_model_file, --do_lower_case."""
  flags.DEFINE_string("vocab_file", None, "The vocabulary file that the BERT model was "
                      "trained on (WordPiece vocab.txt).")
  flags.DEFINE_string("spm_model_file", None, "A SentencePiece model file, instead of "
                      "--vocab_file.")
  flags.DEFINE_bool("do_lower_case", True, "Whether to lower case the input text. Should be "
                    "True for uncased models and False for cased models.")


def define_training_flags(head_may_be_missing: bool = False) -> None:
  """The training block: run_pretraining.py's names, defaults and meanings.

  Args:
    head_may_be_missing: fine-tuning, where --init_checkpoint lacks the new task head, which
      --strict_init_checkpoint then still allows.
  """
  # The ROCm fork's.
  flags.DEFINE_bool("use_horovod", False, "Data-parallel training with Horovod.")
  flags.DEFINE_enum("optimizer_type", "adam", ["adam", "lamb", "nadam", "nlamb"], "Optimizer.")
  flags.DEFINE_bool("auto_mixed_precision", False, "Mixed precision fp16 (--precision=fp16).")
  flags.DEFINE_alias("auto_mixed_precisioin", "auto_mixed_precision")  # the fork's spelling
  # NVIDIA's.
  flags.DEFINE_integer("num_accumulation_steps", 1, "Micro-batches per optimizer step.",
                       lower_bound=1)
  flags.DEFINE_bool("allreduce_post_accumulation", True,
                    "All-reduce once per optimizer step after accumulating (True), or after "
                    "every micro-batch (False).")
  flags.DEFINE_bool("use_xla", False, "XLA-compile the forward/backward pass.")
  flags.DEFINE_bool("fp16_allreduce", False, "Compress the gradient all-reduce to float16.")
  flags.DEFINE_bool("overlap_allreduce", True,
                    "All-reduce each layer's gradients as soon as the backward pass has them, "
                    "overlapping communication with computation (False: one grouped "
                    "all-reduce after the backward pass; --use_xla implies False).")
  flags.DEFINE_enum("precision", "fp32", ["fp32", "fp16", "bf16"], "Compute precision.")
  flags.DEFINE_integer("log_freq", None, "Log every this many steps "
                       "(default: min(--iterations_per_loop, 100)).", lower_bound=1)
  flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints to keep.", lower_bound=1)
  flags.DEFINE_float("hang_timeout_secs", 600,
                     "End the job when no optimizer step completes in this many seconds "
                     "(after the first step); each rank says what it waited for. 0: never.",
                     lower_bound=0)
  flags.DEFINE_integer("seed", 12345, "Random seed for initialisation and input order.")
  # Google's (a TPU setting there).
  flags.DEFINE_integer("iterations_per_loop", 1000, "Google's TPU host-loop size. Here: the "
                       "default for --log_freq when --log_freq is not given.", lower_bound=1)
  # Ours.
  flags.DEFINE_bool("strict_init_checkpoint", False,
                    "Any unexpected checkpoint/model mismatch in --init_checkpoint "
                    f"{'(other than the new head) ' if head_may_be_missing else ''}is an error.")


def define_finetuning_flags() -> None:
  """Google's flags common to run_classifier and run_squad, and the training block."""
  flags.DEFINE_string("bert_config_file", None, "The config json file corresponding to the "
                      "pre-trained BERT model (Google's bert_config.json or HF config.json).")
  flags.DEFINE_string("output_dir", None, "The output directory where the model checkpoints "
                      "and results will be written.")
  flags.DEFINE_string("init_checkpoint", None, "Initial weights: a Google TF1 checkpoint, a "
                      "Hugging Face folder or one of our checkpoints.")
  flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
  flags.DEFINE_float("num_train_epochs", 3.0, "Total number of training epochs to perform.")
  flags.DEFINE_float("warmup_proportion", 0.1, "Proportion of training to perform linear "
                     "learning rate warmup for. E.g., 0.1 = 10% of training.")
  flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save the model "
                       "checkpoint.", lower_bound=1)
  define_training_flags(head_may_be_missing=True)
  define_padding_flag()


def define_padding_flag() -> None:
  flags.DEFINE_bool("pad_to_max_length", False, "Pad every example to --max_seq_length, as "
                    "Google's scripts did. Default: batches of examples of similar length, "
                    "each padded to its longest rounded up to one of 8 lengths (outputs "
                    "equal, far fewer padding tokens computed).")


def options_from_flags(options_type, flag_values: flags.FlagValues):
  """An instance of the dataclass `options_type`, each field the flag of the same name."""
  return options_type(**{field.name: flag_values[field.name].value
                         for field in dataclasses.fields(options_type)})
