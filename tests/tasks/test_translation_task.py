"""The translation loader on small TSV files written here (Tatoeba-style attribution column)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attnbench.errors import DataError
from attnbench.tasks import TASKS
from attnbench.tasks.base import EOS, PAD, UNK
from attnbench.tasks.metrics import compute_metrics, detokenize

Translation = TASKS.get("translation")

PAIRS = [
    ("Go.", "Va !"),
    ("Hi.", "Salut !"),
    ("Run!", "Cours !"),
    ("Who?", "Qui ?"),
    ("Fire!", "Au feu !"),
    ("Help!", "À l'aide !"),
    ("Jump.", "Saute."),
    ("Stop!", "Arrête-toi !"),
    ("Wait!", "Attends !"),
    ("I see.", "Je comprends."),
]


def tatoeba(tmp_path: Path, pairs=PAIRS, name: str = "fra.txt", header: str = "") -> str:
    lines = [header] if header else []
    for i, (src, tgt) in enumerate(pairs):
        lines.append(f"{src}\t{tgt}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i} (CM)")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("tokenizer", "longest"),
    [("whitespace", 3), ("punct", 5)],  # "À l'aide !": 3 words; ▁À ▁l ' aide ▁!
)
def test_tatoeba_pairs_round_trip(tmp_path: Path, tokenizer: str, longest: int) -> None:
    data = Translation(path=tatoeba(tmp_path), tokenizer=tokenizer).load(0)
    assert data.extra["tokenizer"] == tokenizer
    assert data.primary_metric == "bleu"
    assert (len(data.train), len(data.val), len(data.test)) == (8, 1, 1)
    itos = data.target_itos
    src_itos = data.extra["input_itos"]
    targets = {tgt for _, tgt in PAIRS}
    by_source = dict(PAIRS)
    for split in (data.train,):
        for x, y in zip(split.inputs.tolist(), split.targets.tolist(), strict=True):
            source = detokenize(x, src_itos)
            text = detokenize(y, itos)
            assert text in targets and by_source[source] == text
            n = y.index(EOS)
            assert y[n + 1 :] == [PAD] * (len(y) - n - 1)
    assert data.spec.max_target_len == longest + 1  # + EOS
    scores = compute_metrics(data.metrics, data.train.targets, data.train.targets, itos)
    assert scores == {"token_acc": 1.0, "exact_match": 1.0, "bleu": pytest.approx(100.0),
                      "bleu_tok": pytest.approx(100.0)}


def test_header_columns_and_separate_files(tmp_path: Path) -> None:
    train = tatoeba(tmp_path, header="en\tfr\tattribution")
    val = tatoeba(tmp_path, PAIRS[:2], "val.txt", header="en\tfr\tattribution")
    test = tatoeba(tmp_path, PAIRS[2:5], "test.txt", header="en\tfr\tattribution")
    task = Translation(
        path=train, val_path=val, test_path=test, header=True, source_column=1, target_column=0
    )
    data = task.load(0)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 3)
    assert detokenize(data.val.targets[0].tolist(), data.target_itos) == "Go."


def test_truncation_keeps_eos(tmp_path: Path) -> None:
    long = [("a b c d e f", "u v w x y z")] * 10
    data = Translation(path=tatoeba(tmp_path, long), max_len=3).load(0)
    assert data.spec.max_len == 3 and data.spec.max_target_len == 4
    assert data.train.targets[0].tolist()[-1] == EOS


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_piece_tokenizers_detokenize_exactly(tmp_path: Path, tokenizer: str) -> None:
    data = Translation(path=tatoeba(tmp_path), tokenizer=tokenizer, bpe_vocab_size=80).load(0)
    texts = {detokenize(y, data.target_itos) for y in data.train.targets.tolist()}
    assert texts <= {tgt for _, tgt in PAIRS} and len(texts) == 8
    assert data.spec.target_vocab_size == len(data.target_itos)


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("Go.\tVa !\nHi.\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Translation(path=str(path)).load(0)
    message = str(err.value)
    assert message.startswith(f"{path}:2:") and "at least 2 tab-separated fields, got 1" in message
    path.write_text("Go.\tVa !\nHi.\t \n", encoding="utf-8")
    with pytest.raises(DataError, match=r":2: empty target sentence"):
        Translation(path=str(path)).load(0)
    path.write_bytes("Go.\tÇa va !\n".encode() + b"Hi.\tSalut \xff\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: not valid UTF-8"):
        Translation(path=str(path)).load(0)
    missing = str(tmp_path / "missing.tsv")
    with pytest.raises(DataError, match="file not found"):
        Translation(path=str(tmp_path / "fra.txt"), val_path=missing).load(0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "'task.path' is required"),
        (dict(path="p.tsv", source_column=-1), "'task.source_column' = -1"),
        (dict(path="p.tsv", target_column=0), "must differ from source_column"),
        (dict(path="p.tsv", bpe_vocab_size=4), "'task.bpe_vocab_size' = 4"),
        (dict(path="p.tsv", max_vocab=0), "'task.max_vocab' = 0"),
    ],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        Translation(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_seed_does_not_reshuffle_the_split(tmp_path: Path) -> None:
    path = tatoeba(tmp_path, [(f"go {i} now.", f"va {i} !") for i in range(40)])
    loads = [Translation(path=path).load(seed) for seed in (0, 1, 2)]
    for data in loads[1:]:
        assert data.spec == loads[0].spec and data.target_itos == loads[0].target_itos
        for split in ("train", "val", "test"):
            a, b = getattr(data, split), getattr(loads[0], split)
            assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    reseeded = Translation(path=path, split_seed=None)
    assert reseeded.load(0).extra["input_itos"] != reseeded.load(1).extra["input_itos"]


def test_punct_is_the_default_and_shares_words_across_punctuation(tmp_path: Path) -> None:
    """Issue 14: "Run!" in training, "Run." in test: whitespace tokens make the test word <unk>."""
    pairs = [(f"Run{p}", f"Cours{p}") for p in "!?"] * 5 + [("Go now!", "Va !")] * 5
    train = tatoeba(tmp_path, pairs)
    test = tatoeba(tmp_path, [("Run.", "Cours.")], "test.txt")
    data = Translation(path=train, test_path=test).load(0)
    assert data.extra["tokenizer"] == "punct"
    assert UNK not in data.test.inputs[0].tolist()[:1]  # ▁Run is known; "." is not
    assert detokenize(data.train.targets[0].tolist(), data.target_itos) in {"Cours!", "Cours?"}
    whitespace = Translation(path=train, test_path=test, tokenizer="whitespace").load(0)
    assert whitespace.test.inputs[0, 0] == UNK


def test_punct_bleu_sees_the_text_as_written(tmp_path: Path) -> None:
    data = Translation(path=tatoeba(tmp_path), val_fraction=0.2, test_fraction=0.2).load(0)
    texts = [detokenize(y, data.target_itos) for y in data.train.targets.tolist()]
    assert set(texts) <= {tgt for _, tgt in PAIRS} and len(texts) == 6
    scores = compute_metrics(["bleu"], data.train.targets, data.train.targets, data.target_itos)
    assert scores["bleu"] == pytest.approx(100.0)


@pytest.mark.parametrize("tokenizer", ["punct", "bpe"])
def test_encode_test_reproduces_the_runs_test_split(tmp_path: Path, tokenizer: str) -> None:
    """attnbench evaluate: the saved encoder state (as JSON) encodes the run's test file into the
    run's own test tensors, without the training file; unknown words are UNK, EOS survives
    truncation."""
    train = tatoeba(tmp_path, PAIRS * 2)
    unseen = ("Never seen before, this one is long!", "Jamais vu, et bien trop long !")
    test = tatoeba(tmp_path, [*PAIRS[:3], unseen], "test.txt")
    settings = {"tokenizer": tokenizer, "bpe_vocab_size": 80, "max_len": 6}
    data = Translation(path=train, test_path=test, **settings).load(0)
    state = json.loads(json.dumps(data.extra["encoder"]))
    assert state["target"]["itos"] == list(data.target_itos)
    gone = str(tmp_path / "moved-away.txt")
    split = Translation(path=gone, test_path=test, **settings).encode_test(state, data.spec)
    assert split.align is None
    assert split.inputs.shape == (4, data.spec.max_len)
    assert split.targets.shape == (4, data.spec.max_target_len)
    assert torch.equal(split.inputs, data.test.inputs)
    assert torch.equal(split.targets, data.test.targets)
    assert UNK in split.inputs[3].tolist() and split.targets[3, -1] == EOS
    with pytest.raises(DataError, match="^evaluate on another file needs task.test_path=FILE$"):
        Translation(path=gone, **settings).encode_test(state, data.spec)


def raw_targets(path: str) -> list[str]:
    """The second column of a TSV file, read here without attnbench."""
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n").split("\t")[1] for line in fh if line.strip()]


@pytest.mark.parametrize("lowercase", [False, True])
def test_bleu_scores_against_the_references_as_written(tmp_path: Path, lowercase: bool) -> None:
    """Issue 24: an out-of-vocabulary word in a reference stays itself for `bleu` (sacrebleu on
    the file's text); only `bleu_tok`, on references decoded from ids, sees `<unk>`."""
    import sacrebleu

    train = tatoeba(tmp_path, PAIRS * 2)
    test = tatoeba(tmp_path, [("Go.", "Va Zanzibar !"), ("Hi.", "Salut !"), *PAIRS[2:6]],
                   "test.txt")
    data = Translation(path=train, test_path=test, lowercase=lowercase).load(0)
    written = raw_targets(test)
    assert data.test.references == ([t.lower() for t in written] if lowercase else written)
    pred = data.test.targets  # a model that outputs the reference ids: <unk> for unknown words
    hyps = [detokenize(row, data.target_itos) for row in pred.tolist()]
    assert hyps[0] == ("va <unk> !" if lowercase else "Va <unk> !")
    scores = compute_metrics(data.metrics, pred, data.test.targets, data.target_itos,
                             data.test.references)
    expected = sacrebleu.corpus_bleu(hyps, [written], lowercase=lowercase,
                                     use_effective_order=True).score
    assert scores["bleu"] == pytest.approx(expected) and scores["bleu"] < 90
    assert scores["bleu_tok"] == pytest.approx(100.0)  # the decoded reference has <unk> too
    # without raw references `bleu` falls back to the decoded ones
    assert compute_metrics(["bleu"], pred, data.test.targets, data.target_itos) == {
        "bleu": pytest.approx(100.0)}


def test_encode_test_keeps_the_files_references(tmp_path: Path) -> None:
    train = tatoeba(tmp_path, PAIRS * 2)
    other = tatoeba(tmp_path, [("Go.", "Va, Zanzibar !"), ("Hi.", "Salut !")], "other.txt")
    data = Translation(path=train).load(0)
    split = Translation(path=train, test_path=other).encode_test(data.extra["encoder"], data.spec)
    assert split.references == raw_targets(other)


def test_evaluate_scores_raw_references_on_its_own_split_and_another_file(
    cli, runs_dir: Path, tmp_path: Path
) -> None:
    """The raw references travel with the saved model: `evaluate` on the run's own test split
    gives the run's own BLEU, and on another file scores that file's sentences."""
    from tests.conftest import all_runs

    pairs = [(f"I see {w}.", f"Je vois {w}.") for w in ("a", "b", "c", "d", "e")] * 8
    train = tatoeba(tmp_path, pairs)
    other = tatoeba(tmp_path, [("I see b.", "Je vois Zanzibar."), ("I see a.", "Je vois a.")],
                    "other.txt")
    run = cli("run", "task=translation", "backbone=seq2seq", f"task.path={train}")
    assert run.exit_code == 0, run.output
    (trained,) = all_runs(runs_dir)
    assert {"test/bleu", "test/bleu_tok", "val/bleu"} <= set(trained.metrics)
    own = cli("evaluate", trained.run_id, "--runs-dir", str(runs_dir))
    assert own.exit_code == 0, own.output
    result = cli("evaluate", trained.run_id, f"task.test_path={other}", "--runs-dir",
                 str(runs_dir))
    assert result.exit_code == 0, result.output
    children = {r.tags["attnbench.test_source"]: r for r in all_runs(runs_dir)
                if r.run_id != trained.run_id}
    for name in ("test/bleu", "test/bleu_tok"):
        assert children["the run's own test split"].metrics[name] == trained.metrics[name]
    assert {"test/bleu", "test/bleu_tok"} <= set(children[other].metrics)
