"""``wit train``'s flags come from ``TrainOptions``: same defaults, one-line errors, and no torch at start-up."""

import argparse
import subprocess
import sys

import pytest

from trainer.model_configs import MODEL_CONFIGS
from trainer.options import TrainOptions
from wit_pipeline.errors import UserError
from wit_pipeline.options import add_options, from_args

REQUIRED = ["--shards", "s", "--out", "o"]


def _parse(argv: list[str]) -> TrainOptions:
    parser = argparse.ArgumentParser()
    add_options(parser, TrainOptions)
    return from_args(TrainOptions, parser.parse_args(REQUIRED + argv))


def test_no_flags_give_the_dataclass_defaults():
    assert _parse([]) == TrainOptions(shards="s", out="o")


def test_flags_map_to_fields():
    options = _parse(["--model", "tiny", "--batch-size", "8", "--steps", "5", "--grad-clip", "0", "--no-resample",
                      "--eval", "a=x", "b=y", "--eval", "c=z", "--precision", "bf16", "--compile"])
    assert (options.model, options.batch_size, options.steps, options.samples) == ("tiny", 8, 5, None)
    assert options.grad_clip is None                     # 0 means no clipping
    assert options.resample is False and options.compile is True and options.precision == "bf16"
    assert options.eval == ["a=x", "b=y", "c=z"]
    assert _parse(["--grad-clip", "0.5"]).grad_clip == 0.5


def test_model_choices_are_the_model_configs():
    parser = argparse.ArgumentParser()
    add_options(parser, TrainOptions)
    model = next(a for a in parser._actions if a.dest == "model")
    assert list(model.choices) == list(MODEL_CONFIGS)


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--accum", "0"], ["--grad-clip", "-1"],
                                  ["--model", "resnet"], ["--precision", "fp8"], ["--lr", "nan"], ["--lr", "-1"],
                                  ["--lr", "0"], ["--steps", "0"], ["--samples", "-1"], ["--workers", "-1"],
                                  ["--vocab-size", "1"], ["--beta1", "1"], ["--eps", "0"], ["--weight-decay", "-1"],
                                  ["--eval-every", "0"], ["--tokenizer-captions", "0"], ["--seed", "-1"],
                                  ["--device", "bogus"], ["--device", "cuda:"], ["--device", "cuda0"]])
def test_bad_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        _parse(argv)
    assert info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_validate_refuses_what_a_library_caller_can_get_wrong():
    with pytest.raises(UserError, match="not both"):
        TrainOptions(shards="s", out="o", steps=1, samples=1).validate()
    with pytest.raises(UserError, match="--log-every must be at least 1"):
        TrainOptions(shards="s", out="o", log_every=0).validate()
    with pytest.raises(UserError, match="unknown"):
        TrainOptions(shards="s", out="o", model="resnet").validate()


def test_steps_and_samples_together_are_a_one_line_error(capsys):
    from wit_pipeline.cli import main as wit_main

    assert wit_main(["train", *REQUIRED, "--steps", "1", "--samples", "8"]) == 2
    assert capsys.readouterr().err.strip() == "wit train: error: give --steps or --samples, not both"


def test_the_cli_modules_do_not_import_torch():
    code = "import sys, trainer.cli, trainer.demo, trainer.options; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_device_this_machine_lacks_is_a_one_line_error():
    import torch

    from trainer.options import check_device

    check_device(None)
    check_device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UserError, match=rf"--device cuda:{count}: this machine has .*use --device cpu"):
        check_device(f"cuda:{count}")
    with pytest.raises(UserError, match="--device 'tpu': use cpu, cuda, cuda:N or mps"):
        TrainOptions(shards="s", out="o", device="tpu").validate()
