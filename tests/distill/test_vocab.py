"""Vocabulary trimming: smaller embeddings, same outputs on the domain's text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdedge.data.prepare import load_prepared
from kdedge.distill.device import resolve
from kdedge.distill.inference import encode, predict_logits
from kdedge.distill.models import Classifier, load_classifier, save_classifier
from kdedge.distill.student import student_from_teacher
from kdedge.distill.vocab import VocabReport, trim_vocabulary
from kdedge.errors import ConfigError

CPU = resolve("cpu")


@pytest.fixture(scope="module")
def texts(data_dir) -> list[str]:
    data = load_prepared(data_dir)
    return [e.text for e in [*data.train, *data.unlabeled, *data.validation]]


@pytest.fixture(scope="module")
def student(tiny_teacher) -> Classifier:
    return student_from_teacher(load_classifier(tiny_teacher), [0, 2])


@pytest.fixture(scope="module")
def trimmed(student, texts) -> tuple[Classifier, VocabReport]:
    return trim_vocabulary(student, texts)


def _logits(clf: Classifier, texts: list[str]) -> np.ndarray:
    return predict_logits(clf.model, clf.tokenizer, texts, CPU, max_length=clf.max_length)


def test_trim_shrinks_vocab_and_reports(student, trimmed):
    clf, report = trimmed
    original = len(student.tokenizer)
    assert report.original_size == original
    assert report.kept_size == len(clf.tokenizer) == clf.model.config.vocab_size < original
    assert report.from_texts + report.from_specials + report.from_chars == report.kept_size
    assert report.from_specials >= 5 and report.from_texts > 0 and report.from_chars > 0
    hidden = student.model.config.hidden_size
    assert report.embedding_params_before == original * hidden
    assert report.embedding_params_after == report.kept_size * hidden
    assert clf.model.get_input_embeddings().weight.shape == (report.kept_size, hidden)
    assert report.unk_rate_after == report.unk_rate_before
    assert clf.meta["vocab_trim"] == report.to_dict()
    assert "vocab_trim" not in student.meta  # the input is untouched
    assert student.model.config.vocab_size == original
    assert student.model.get_input_embeddings().weight.shape[0] == original


def test_kept_rows_are_the_original_rows_in_order(student, trimmed):
    clf, _ = trimmed
    old_vocab, new_vocab = student.tokenizer.get_vocab(), clf.tokenizer.get_vocab()
    assert set(new_vocab) <= set(old_vocab)
    by_new = sorted(new_vocab, key=new_vocab.get)
    assert [new_vocab[t] for t in by_new] == list(range(len(by_new)))
    assert sorted(by_new, key=old_vocab.get) == by_new  # original relative order
    old_w = student.model.get_input_embeddings().weight
    new_w = clf.model.get_input_embeddings().weight
    old_ids = torch.tensor([old_vocab[t] for t in by_new])
    assert torch.equal(new_w, old_w[old_ids])


def test_same_logits_and_renumbered_ids_on_in_domain_text(student, trimmed, texts):
    clf, _ = trimmed
    np.testing.assert_allclose(_logits(clf, texts), _logits(student, texts), atol=1e-5)
    old_ids = encode(student.tokenizer, texts, student.max_length)
    new_ids = encode(clf.tokenizer, texts, clf.max_length)
    old_tokens = [student.tokenizer.convert_ids_to_tokens(row) for row in old_ids]
    assert [clf.tokenizer.convert_ids_to_tokens(row) for row in new_ids] == old_tokens


def test_special_tokens_are_mapped(trimmed):
    clf, _ = trimmed
    tok, config = clf.tokenizer, clf.model.config
    for name in ("pad", "unk", "cls", "sep", "mask"):
        token, token_id = getattr(tok, f"{name}_token"), getattr(tok, f"{name}_token_id")
        assert 0 <= token_id < len(tok)
        assert tok.convert_ids_to_tokens(token_id) == token == f"[{name.upper()}]"
    assert config.pad_token_id == tok.pad_token_id
    assert clf.model.get_input_embeddings().padding_idx == tok.pad_token_id
    batch = tok(["where is my order", "hello"], padding=True)
    long, short = batch["input_ids"]
    assert long[0] == short[0] == tok.cls_token_id
    assert long[-1] == tok.sep_token_id
    assert short[-1] == tok.pad_token_id and tok.sep_token_id in short
    assert tok.decode(long, skip_special_tokens=True) == "where is my order"
    assert tok.decode(short).startswith("[CLS] hello [SEP] [PAD]")


def test_save_load_round_trip(trimmed, texts, tmp_path):
    clf, report = trimmed
    out = save_classifier(clf, tmp_path / "trimmed")
    vocab_lines = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    new_vocab = clf.tokenizer.get_vocab()
    assert vocab_lines == sorted(new_vocab, key=new_vocab.get)
    loaded = load_classifier(out)
    assert loaded.model.config.vocab_size == report.kept_size
    assert loaded.tokenizer.get_vocab() == new_vocab
    assert loaded.meta["vocab_trim"] == report.to_dict()
    assert encode(loaded.tokenizer, texts, 32) == encode(clf.tokenizer, texts, 32)
    np.testing.assert_allclose(_logits(loaded, texts), _logits(clf, texts), atol=1e-5)


def test_unseen_word_falls_back_to_characters(student, texts):
    word = "lawyer"
    assert student.tokenizer.tokenize(word) == [word]  # one token in the full vocabulary
    without = [t for t in texts if word not in t]
    assert len(without) < len(texts)
    clf, _ = trim_vocabulary(student, without)
    pieces = clf.tokenizer.tokenize(word)
    assert "[UNK]" not in pieces and len(pieces) > 1
    assert "".join(p.removeprefix("##") for p in pieces) == word
    bare, _ = trim_vocabulary(student, without, keep_single_chars=False)
    assert "[UNK]" in bare.tokenizer.tokenize(word)
    assert len(bare.tokenizer) < len(clf.tokenizer)


def test_words_that_end_in_unk_stay_unk(student):
    """Greedy WordPiece takes "ab" in "abc", finds no "##c" and gives [UNK]; had trimming
    dropped the unused "ab", it would find "a" + "##bc" and change the tokenization."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "a",
        "b",
        "c",
        "x",
        "ab",
        "##b",
        "##bc",
        "xyz",
    ]
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tok = BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    assert tok.tokenize("abc xbc") == ["[UNK]", "x", "##bc"]
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    clf = Classifier(BertForSequenceClassification(config), tok, student.labels, {})
    trimmed, report = trim_vocabulary(clf, ["abc xbc"])
    assert report.kept_size == len(words) - 1  # "xyz" goes, the unused "ab" stays
    assert "ab" in trimmed.tokenizer.get_vocab()
    assert trimmed.tokenizer.tokenize("abc xbc") == ["[UNK]", "x", "##bc"]
    assert trimmed.tokenizer("abc")["input_ids"] == [
        trimmed.tokenizer.cls_token_id,
        trimmed.tokenizer.unk_token_id,
        trimmed.tokenizer.sep_token_id,
    ]  # BertProcessing ids remapped
    assert report.unk_rate_before == report.unk_rate_after == pytest.approx(1 / 3)


def test_keep_min_count_drops_rare_tokens(student, texts, trimmed):
    _, full = trimmed
    clf, report = trim_vocabulary(student, texts, keep_min_count=10)
    assert report.kept_size < full.kept_size
    assert report.from_texts < full.from_texts
    assert "[UNK]" not in clf.tokenizer.tokenize(texts[0])  # rare words fall back to chars
    with pytest.raises(ConfigError, match="keep_min_count"):
        trim_vocabulary(student, texts, keep_min_count=0)


def test_bpe_tokenizer_is_refused(student):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        ["where is my order", "track my package"],
        trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>", "<unk>"]),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    bpe = Classifier(student.model, tok, student.labels, dict(student.meta))
    with pytest.raises(ConfigError, match=r"WordPiece.*BPE.*--trim-vocab"):
        trim_vocabulary(bpe, ["where is my order"])


def test_output_embeddings_are_refused(student):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=len(student.tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    mlm = Classifier(BertForMaskedLM(config), student.tokenizer, student.labels, {})
    with pytest.raises(ConfigError, match="tied"):
        trim_vocabulary(mlm, ["where is my order"])


def test_feature_distill_still_refuses_different_tokenizations(tiny_teacher, student, texts):
    from kdedge.distill.features import feature_distill

    coarse, _ = trim_vocabulary(student, texts, keep_min_count=10**6)  # words -> characters
    teacher = load_classifier(tiny_teacher, eager_attention=True)
    with pytest.raises(ConfigError, match="tokenize identically"):
        feature_distill(coarse, teacher, texts[:4], CPU, epochs=1)


def test_distill_with_trim_vocab(tiny_teacher, data_dir, tmp_path):
    from kdedge.distill.distillation import StudentSpec, distill
    from kdedge.distill.trainer import TrainConfig

    result = distill(
        [tiny_teacher],
        data_dir,
        tmp_path / "student",
        placement=CPU,
        student=StudentSpec(layers=2, trim_vocab=True),
        config=TrainConfig(epochs=2, batch_size=16, lr=3e-3),
        cache_dir=tmp_path / "cache",
        feature_epochs=1,
        overwrite=True,
    )
    assert len(result.feature_history) == 1
    teacher = load_classifier(tiny_teacher)
    student = load_classifier(result.out_dir)
    assert student.model.config.num_hidden_layers == 2
    assert student.model.config.vocab_size < teacher.model.config.vocab_size
    assert len(student.tokenizer) == student.model.config.vocab_size
    trim = student.meta["vocab_trim"]
    assert trim["kept_size"] == student.model.config.vocab_size
    assert trim["unk_rate_after"] == trim["unk_rate_before"]
    logits = _logits(student, ["where is my order", "i want to return this"])
    assert logits.shape == (2, len(student.labels)) and np.isfinite(logits).all()
