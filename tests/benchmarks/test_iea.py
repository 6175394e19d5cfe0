"""benchmarks/iea.py: each budget sweep point (its --set items) gets a record of its own; runs
without --set keep the names of the records already written."""

from benchmark_support import load_script


def test_set_items_name_the_run():
    iea = load_script("iea")
    assert iea.set_suffix([]) == ""
    assert iea.set_suffix(["model_args.finetune=full", "train.lr=1e-4"]) == "_finetune-full_lr-1e-4"
    assert iea.set_suffix(['model_args.lora={"r": 16}']) == "_lora-r-16"
    assert iea.set_suffix(["train.lr=1e-4"]) != iea.set_suffix(["train.lr=3e-4"])
