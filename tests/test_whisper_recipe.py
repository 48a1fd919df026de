"""The Whisper fine-tuning recipe (issue 6): config schema, targets, batching, SpecAugment
inside the speech, and the CI smoke run (a tiny random Whisper with the real tokenizer trains,
its loss falls, the best checkpoint reloads and decodes, resume continues, and the CTranslate2
export loads in faster-whisper)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from biosig.cli import main
from biosig.errors import ConfigError
from biosig.train.config import WhisperTrainConfig, load_config, validate_config
from biosig.train.whisper import (
    BucketBatchSampler,
    TargetBuilder,
    Utterance,
    collate_speech,
    split_utterances,
)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "whisper_dictation" / "config.yaml"
LIBRI_MINI = "librispeech_test_clean_mini.jsonl"


def _minimal(**extra) -> dict:
    d = {"task": "whisper_asr", "recipe": "w", "model": {"name_or_path": "x"},
         "data": {"train_manifest": "m.jsonl"}}
    d.update(extra)
    return d


def test_recipe_config_and_profiles_validate():
    for profile in (None, "cpu", "smoke"):
        cfg = load_config(RECIPE, profile=profile)
        assert isinstance(cfg, WhisperTrainConfig)
    cpu = load_config(RECIPE, profile="cpu")
    assert cpu.lora.enabled and cpu.train.cache_encoder_outputs and cpu.device == "cpu"
    # real speech on top of the cpu profile: replay the train speakers, choose the weight on
    # the dev speakers (never the same lines), instead of the cpu profile's fixed 0.5
    real = load_config(RECIPE, profile="cpu,real_speech")
    assert real.export.interpolation == 1.0 and real.select.manifest is not None
    assert real.data.replay.filter == {"split": "train"}
    assert real.select.filter["split"] == "valid" and real.lora.enabled


@pytest.mark.parametrize("data,needle", [
    (_minimal(extra_key=1), "key 'extra_key': unknown key"),
    (_minimal(train={"epochs": "three"}), "train.epochs"),
    (_minimal(train={"lr": 1e-5, "typo": 1}), "key 'train.typo': unknown key"),
    (_minimal(train={"cache_encoder_outputs": True}), "needs train.freeze_encoder"),
    (_minimal(train={"cache_encoder_outputs": True, "freeze_encoder": True}),
     "cannot be combined with SpecAugment"),
    (_minimal(lora={"enabled": True, "scope": "encoder"}, train={"freeze_encoder": True}),
     "lora.scope"),
    (_minimal(train={"encoder_train_layers": 2}), "needs train.freeze_encoder"),
    (_minimal(train={"encoder_train_layers": -1, "freeze_encoder": True}),
     "train.encoder_train_layers"),
    (_minimal(task="whisper"), "key 'task' is 'whisper'"),
    (_minimal(export={"ct2_quantization": "int4"}), "export.ct2_quantization"),
])
def test_config_errors_name_the_key(data, needle):
    with pytest.raises(ConfigError) as e:
        validate_config(data, source="cfg.yaml")
    assert needle in str(e.value) and str(e.value).startswith("cfg.yaml")


def test_targets(hf_base_dir):
    from transformers import WhisperProcessor
    tok = WhisperProcessor.from_pretrained(hf_base_dir).tokenizer
    tb = TargetBuilder(tok)
    dec, lab = tb("metformin five hundred milligrams period")
    assert len(dec) == len(lab)
    names = tok.convert_ids_to_tokens(dec[:4])
    assert names == ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    assert lab[:3] == [-100] * 3 and lab[-1] == tok.eos_token_id
    assert tok.decode(lab[3:-1]).strip() == "metformin five hundred milligrams period"
    dec, lab = tb("chest pain", timestamps=True, end_s=1.234)
    assert tok.convert_ids_to_tokens(dec[3]) == "<|0.00|>"
    assert lab[:2] == [-100] * 2 and lab[2] == dec[3]          # <|0.00|> is predicted
    assert tok.convert_ids_to_tokens(lab[-2]) == "<|1.24|>"    # end of speech, 20 ms steps
    batch = collate_speech([{"index": 0, "audio": np.ones(3200, np.float32),
                             "decoder_input_ids": dec, "labels": lab},
                            {"index": 1, "audio": np.ones(1600, np.float32),
                             "decoder_input_ids": dec[:3], "labels": lab[:3]}],
                           pad_id=tok.eos_token_id)
    assert batch["audio"].shape == (2, 480000) and batch["n_frames"].tolist() == [20, 10]
    assert (batch["labels"][1, 3:] == -100).all()


def test_bucket_sampler_covers_each_item_once_and_shards():
    lengths = np.random.default_rng(0).uniform(1, 20, 103)
    s = BucketBatchSampler(lengths, 8, seed=1)
    s.set_epoch(3)
    b = s.batches()
    flat = sorted(i for x in b for i in x)
    assert flat == list(range(103)) and len(b) == len(s)
    # within a batch, lengths are close (sorted pools)
    spread = np.mean([np.ptp(lengths[x]) for x in b if len(x) > 1])
    assert spread < 0.25 * np.ptp(lengths)
    s2 = BucketBatchSampler(lengths, 8, seed=1)
    s2.set_epoch(3)
    assert s2.batches() == b                     # a function of (seed, epoch)
    s2.set_epoch(4)
    assert s2.batches() != b
    ranks = [BucketBatchSampler(lengths, 8, seed=1, rank=r, world_size=3) for r in range(3)]
    parts = [r.batches() for r in ranks]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == len(ranks[0])
    assert set(i for p in parts for x in p for i in x) == set(range(103))


def test_spec_augment_masks_inside_speech_only():
    from biosig.train.config import WhisperAugmentConfig
    from biosig.train.data import spec_augment
    x = torch.randn(4, 80, 3000) + 5
    lengths = torch.tensor([300, 1000, 50, 3000])
    acfg = WhisperAugmentConfig(freq_masks=0, time_masks=3, time_mask_width=40)
    y = spec_augment(x, acfg, generator=torch.Generator().manual_seed(0), lengths=lengths)
    changed = (y != x).any(dim=1)                 # (batch, frames)
    for k, n in enumerate(lengths.tolist()):
        assert not changed[k, n:].any()
        assert changed[k, :n].any()


def test_split_by_group_keeps_groups_apart():
    utts = [Utterance(f"{v}-{p}", Path("x"), "t", 1.0, p) for v in "abc" for p in "pqrstuvw"]
    tr, va = split_utterances(utts, valid_frac=0.25, seed=0)
    assert {u.group for u in tr}.isdisjoint({u.group for u in va})
    assert len(va) == 6 and len(tr) == 18
    with pytest.raises(ConfigError, match="group"):
        split_utterances(utts[:1], valid_frac=0.5)


@pytest.mark.slow
@pytest.mark.timeout(1200)     # 30 s alone; 6 min seen on a loaded 2-core machine
def test_whisper_recipe_smoke(tiny_whisper_dir, data_root, tmp_path):
    """CI smoke (issue 6, part 5): `biosig train` on the recipe's smoke profile with a tiny
    random Whisper; the loss falls, best/ reloads and decodes, --resume continues, and the
    CTranslate2 export transcribes in faster-whisper."""
    from faster_whisper import WhisperModel
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    torch.set_num_threads(2)
    args = ["train", str(RECIPE), "--profile", "smoke", "--set", f"output_dir={tmp_path}",
            "--set", f"model.name_or_path={tiny_whisper_dir}", "--set", "train.lr=0.01",
            "--set", "train.max_steps=null", "--set", "train.epochs=3",
            "--set", "data.timestamps_prob=0.5", "--set", "train.patience=null",
            "--set", f"data.replay.manifest={REPO / 'data_manifests' / 'fleurs_en.jsonl'}",
            "--set", "data.replay.limit=2", "--set", "data.replay.distill_weight=0.5",
            "--set", "data.replay.filter={split: train}",
            "--set", "export.interpolation=0.5", "--run-id", "smoke", "--no-progress"]
    assert main(args) == 0
    run = tmp_path / "whisper_dictation" / "smoke"
    # replay targets: the starting model's transcripts of the 2 rehearsal clips, made once
    replay = [json.loads(x) for x in (run / "replay_targets.jsonl").read_text().splitlines()]
    assert len(replay) == 2 and all(isinstance(r["text"], str) for r in replay)
    # data.replay.filter kept the manifest's 3 training lines, the limit the first and last
    from biosig.manifests import read_manifest
    train_ids = [r.id for r in read_manifest(REPO / "data_manifests" / "fleurs_en.jsonl")
                 if r.split == "train"]
    assert [r["id"] for r in replay] == [train_ids[0], train_ids[-1]]
    replay_mtime = (run / "replay_targets.jsonl").stat().st_mtime_ns
    for name in ("config.yaml", "env.json", "metrics.jsonl", "last.pt", "report.json",
                 "learning_curves.png", "valid_predictions.jsonl", "best/config.json",
                 "best/model.safetensors", "best/tokenizer.json", "ct2/model.bin"):
        assert (run / name).is_file(), name
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    assert hist[3]["train_loss"] < 0.8 * hist[1]["train_loss"]   # ln(51865) = 10.86 at start
    assert hist[3]["valid_loss"] < hist[0]["valid_loss"]
    # the distillation term ran on the replay clips (full fine-tune: a frozen copy is the
    # teacher); it starts at 0 (same weights) and becomes positive as the model moves
    kls = [h["train_distill_kl"] for h in hist[1:]]
    assert all(np.isfinite(kls)) and max(kls) > 0
    rep = json.loads((run / "report.json").read_text())
    assert rep["best_epoch"] in (0, 1, 2, 3) and "wer" in rep["valid"]
    # export.interpolation 0.5: best/ is the midpoint of the starting and fine-tuned weights,
    # scored again on the validation set; the fine-tuned weights stay in best_tuned/
    from safetensors.torch import load_file
    w0 = load_file(tiny_whisper_dir / "model.safetensors")
    w1 = load_file(run / "best_tuned" / "model.safetensors")
    wb = load_file(run / "best" / "model.safetensors")
    k = "model.decoder.layers.0.fc1.weight"
    assert torch.allclose(wb[k], 0.5 * (w0[k] + w1[k]), atol=1e-6)
    assert rep["interpolation"] == 0.5 and "wer" in rep["valid_tuned"]
    assert json.loads((run / "best" / "interpolation.json").read_text())["alpha"] == 0.5

    # best/ reloads and decodes
    proc = WhisperProcessor.from_pretrained(run / "best")
    model = WhisperForConditionalGeneration.from_pretrained(run / "best").eval()
    from biosig.asr.audio import load_audio
    from biosig.features import whisper_log_mel
    clip = sorted((data_root / "speech" / "librispeech_test_clean_mini").rglob("*.flac"))[0]
    feats = whisper_log_mel(load_audio(clip)[None], fs=16000)
    with torch.no_grad():
        out = model.generate(torch.as_tensor(feats), language="en", task="transcribe",
                             max_new_tokens=10)
    assert isinstance(proc.tokenizer.decode(out[0], skip_special_tokens=True), str)

    # resume: one more epoch appended, nothing redone
    assert main(args[:-3] + ["--set", "train.epochs=4", "--run-id", "smoke", "--resume",
                             "--no-progress"]) == 0
    hist2 = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist2] == [0, 1, 2, 3, 4] and hist2[:4] == hist
    assert (run / "replay_targets.jsonl").stat().st_mtime_ns == replay_mtime  # read back

    # the CTranslate2 export runs in faster-whisper
    fw = WhisperModel(str(run / "ct2"), device="cpu", compute_type="int8", cpu_threads=2)
    segs, info = fw.transcribe(str(clip), language="en", beam_size=1, vad_filter=False,
                               without_timestamps=True, condition_on_previous_text=False)
    assert isinstance(" ".join(s.text for s in segs), str) and info.language == "en"

    # other export settings on a finished run: --resume finishes it again, without training
    def again(alpha):
        assert main(args[:-3] + ["--set", "train.epochs=4", "--set",
                                 f"export.interpolation={alpha}", "--run-id", "smoke",
                                 "--resume", "--no-progress"]) == 0
        return json.loads((run / "report.json").read_text())

    metrics = (run / "metrics.jsonl").read_text()
    w1 = load_file(run / "best_tuned" / "model.safetensors")
    ct2_mtime = (run / "ct2" / "model.bin").stat().st_mtime_ns
    rep = again(0.75)
    assert (run / "metrics.jsonl").read_text() == metrics
    assert rep["interpolation"] == 0.75 and "finish_wall_s" in rep
    wb = load_file(run / "best" / "model.safetensors")
    assert torch.allclose(wb[k], w0[k] + 0.75 * (w1[k] - w0[k]), atol=1e-6)
    assert (run / "ct2" / "model.bin").stat().st_mtime_ns != ct2_mtime
    rep = again(1.0)          # back to the fine-tuned weights
    assert "interpolation" not in rep and not (run / "best_tuned").exists()
    assert not (run / "best" / "interpolation.json").exists()
    assert torch.equal(load_file(run / "best" / "model.safetensors")[k], w1[k])
    assert rep["valid"] == hist2[rep["best_epoch"]]["valid"]
    report_mtime = (run / "report.json").stat().st_mtime_ns
    again(1.0)                # the same settings: returned as it is
    assert (run / "report.json").stat().st_mtime_ns == report_mtime


def test_load_utterances_without_text_for_model_targets(data_root):
    """Replay clips with ``targets: model`` need no reference text."""
    from biosig.errors import ManifestError
    from biosig.train.whisper import load_utterances
    man = REPO / "data_manifests" / "covid19_cough.jsonl"
    with pytest.raises(ManifestError, match="covid19_cough.jsonl: no line with 'text'"):
        load_utterances(man)
    utts = load_utterances(man, require_text=False, limit=3)
    assert len(utts) == 3 and all(u.text == "" and u.path.is_file() for u in utts)


@pytest.mark.parametrize("targets, scope, expected", [
    (["q_proj", "fc1"], "decoder", {"d0.self_attn.q_proj", "d0.encoder_attn.q_proj", "d0.fc1"}),
    (["encoder_attn.q_proj", "encoder_attn.out_proj"], "decoder",
     {"d0.encoder_attn.q_proj", "d0.encoder_attn.out_proj"}),          # cross-attention only
    (["q_proj"], "encoder", {"e0.self_attn.q_proj"}),
])
def test_lora_target_modules(targets, scope, expected):
    import re

    from biosig.train.config import LoraConfig
    from biosig.train.whisper import lora_target_regex
    names = {f"d0.{m}" for m in ("self_attn.q_proj", "self_attn.out_proj",
                                 "encoder_attn.q_proj", "encoder_attn.out_proj", "fc1")}
    names |= {f"e0.{m}" for m in ("self_attn.q_proj", "self_attn.out_proj", "fc1")}
    full = {n: ("base_model.model.model." + ("decoder" if n[0] == "d" else "encoder")
                + ".layers." + n[1:]) for n in names}
    rx = lora_target_regex(LoraConfig(target_modules=targets, scope=scope))
    assert {n for n, f in full.items() if re.fullmatch(rx, f)} == expected


def test_distill_kl_matches_definition():
    from biosig.train.whisper import distill_kl
    g = torch.Generator().manual_seed(0)
    s_log, t_log = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    labels = torch.tensor([[5, -100, 2], [1, 1, -100]])
    ps, pt = s_log.softmax(-1), t_log.softmax(-1)
    kl = (pt * (pt.log() - ps.log())).sum(-1)               # (2, 3)
    want = kl[labels != -100].mean()
    assert torch.allclose(distill_kl(s_log, t_log, labels), want, atol=1e-6)
    assert float(distill_kl(t_log, t_log, labels)) == pytest.approx(0.0, abs=1e-7)
    assert float(distill_kl(s_log, t_log, torch.full((2, 3), -100))) == 0.0


def _two_targets() -> dict:
    """Two teacher-forced rows: <|startoftranscript|><|en|><|transcribe|> and two tokens."""
    return {"decoder_input_ids": torch.tensor([[50258, 50259, 50359, 400, 401],
                                               [50258, 50259, 50359, 402, 403]]),
            "labels": torch.tensor([[50259, 50359, 400, 401, 50257],
                                    [50259, 50359, 402, 403, -100]])}


def _nudge(model, *names) -> None:
    """Move the weights whose names hold any of ``names`` (as training would)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(x in n for x in names):
                p.add_(0.5 * torch.randn_like(p))


def test_starting_model_with_lora_is_the_model_before_training(tiny_whisper_dir):
    """With LoRA the teacher is the network with its adapters off: after the adapters moved,
    its logits are still those of the untouched model, and the student's differ."""
    from transformers import WhisperForConditionalGeneration

    from biosig.train.config import LoraConfig
    from biosig.train.whisper import StartingModel, apply_lora, token_loss
    torch.manual_seed(0)
    plain = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).eval()
    model = apply_lora(WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir),
                        LoraConfig(enabled=True, r=4, alpha=8, target_modules=["q_proj",
                                                                               "v_proj"]))
    teacher = StartingModel(model, lora=True)
    assert teacher.copy is None                                  # no second model in memory
    _nudge(model, "lora_")
    enc = torch.randn(2, 1500, 64)
    batch = _two_targets()
    dev = torch.device("cpu")
    model.eval()
    t = teacher.logits(model, batch, None, enc, device=dev, amp_dtype=None,
                       rows=torch.tensor([0, 1]))
    _, _, s_logits = token_loss(model, batch, None, enc, device=dev, amp_dtype=None)
    _, _, p_logits = token_loss(plain, batch, None, enc, device=dev, amp_dtype=None)
    assert torch.allclose(t, p_logits, atol=1e-5)
    assert not torch.allclose(s_logits, p_logits, atol=1e-3)
    # adapters are back on after the teacher's forward
    _, _, again = token_loss(model, batch, None, enc, device=dev, amp_dtype=None)
    assert torch.allclose(again, s_logits)


def test_restore_tuned_best_undoes_the_interpolation_and_survives_an_interruption(tmp_path):
    from biosig.train.whisper.export import restore_tuned_best
    best, tuned = tmp_path / "best", tmp_path / "best_tuned"
    best.mkdir()
    (best / "w").write_text("tuned")
    assert restore_tuned_best(best) is False                # not interpolated: left alone
    tuned.mkdir()
    (tuned / "w").write_text("tuned")
    (best / "w").write_text("mix")
    (best / "interpolation.json").write_text("{}")
    assert restore_tuned_best(best) is True
    assert (best / "w").read_text() == "tuned" and not tuned.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["best"]
    best.rename(tuned)                # interrupted between the renames: best/ is missing
    assert restore_tuned_best(best) is True and (best / "w").read_text() == "tuned"
    (best / "interpolation.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="best_tuned"):
        restore_tuned_best(best)                            # nothing to restore from


def test_interpolate_state():
    from biosig.train.whisper import interpolate_state
    a = {"w": torch.zeros(2, 2), "n": torch.tensor([1])}
    b = {"w": torch.ones(2, 2), "n": torch.tensor([7])}
    out = interpolate_state(a, b, 0.25)
    assert torch.allclose(out["w"], torch.full((2, 2), 0.25)) and int(out["n"]) == 7
    with pytest.raises(ValueError, match="shape"):
        interpolate_state(a, {"w": torch.ones(3), "n": b["n"]}, 0.5)
    with pytest.raises(ValueError, match="names"):
        interpolate_state(a, {"w": b["w"]}, 0.5)


def test_encoder_split_at_any_layer_equals_the_encoder(tiny_whisper_dir):
    """encoder_top(encoder_mid(x, k), k) is the encoder's output for every split k, and the
    cache with ``start`` keeps the input of layer k and runs the rest (with gradients)."""
    from transformers import WhisperForConditionalGeneration

    from biosig.train.whisper import EncoderCache, encoder_mid, encoder_top
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).eval()
    enc = model.model.encoder
    feats = torch.randn(2, 80, 3000)
    with torch.no_grad():
        want = enc(feats).last_hidden_state
        for k in range(len(enc.layers) + 1):
            got = encoder_top(enc, encoder_mid(enc, feats, k), k)
            assert torch.allclose(got, want, atol=1e-5), k
    batch = {"index": torch.tensor([3, 5]), "audio": torch.randn(2, 16000)}
    kw = dict(n_mels=80, device=torch.device("cpu"), amp_dtype=None)
    cache = EncoderCache(start=1)
    out = cache.get(model, batch, **kw)
    assert set(cache.store) == {3, 5} and cache.store[3].dtype == torch.float16
    assert cache.store[3].shape == (1500, 64)
    out.sum().backward()                          # through the top layer, not the cached part
    assert enc.layers[1].fc1.weight.grad is not None and enc.layers[0].fc1.weight.grad is None
    full = EncoderCache().get(model, batch, **kw)
    assert torch.allclose(out.detach(), full, atol=2e-2)           # float16 cache


def test_encoder_cache_on_disk_is_read_back_by_clip(tiny_whisper_dir, tmp_path):
    """A cache with a folder writes one file per clip, named by the clip (not by its position),
    and a new cache over the same folder reads them back without running the encoder."""
    from transformers import WhisperForConditionalGeneration

    from biosig.train.whisper import EncoderCache, Utterance
    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).eval()
    utts = [Utterance(id=f"u{i}", path=tmp_path / f"u{i}.wav", text="x", duration_s=1.0,
                      group=f"u{i}")
            for i in range(3)]
    batch = {"index": torch.tensor([0, 2]), "audio": torch.randn(2, 16000)}
    kw = dict(n_mels=80, device=torch.device("cpu"), amp_dtype=None)
    first = EncoderCache(1, folder=tmp_path / "cache")
    with pytest.raises(RuntimeError, match="name_items"):
        first.get(model, batch, **kw)
    first.name_items(utts)
    want = first.frozen_states(model, batch, **kw)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    again = EncoderCache(1, folder=tmp_path / "cache")
    again.name_items([utts[2], utts[1], utts[0]])                  # other positions
    got = again.frozen_states(None, {"index": torch.tensor([2, 0])}, **kw)   # no model needed
    assert torch.equal(got, want)


def test_teacher_keeps_the_starting_encoder_when_its_top_layers_train(tiny_whisper_dir):
    """LoRA on the decoder plus a trainable top encoder layer: switching the adapters off
    does not undo the encoder's change, so the teacher keeps a copy of the starting encoder;
    from the cached input of that layer it gives the untouched model's logits."""
    from transformers import WhisperForConditionalGeneration

    from biosig.train.config import LoraConfig
    from biosig.train.whisper import StartingModel, apply_lora, encoder_mid, token_loss
    torch.manual_seed(0)
    plain = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).eval()
    model = apply_lora(WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir),
                       LoraConfig(enabled=True, r=4, alpha=8,
                                  target_modules=["encoder_attn.q_proj"])).eval()
    teacher = StartingModel(model, lora=True, encoder_start=1)
    _nudge(model, "lora_", "encoder.layers.1.")
    feats = torch.randn(2, 80, 3000)
    batch = _two_targets()
    dev, rows = torch.device("cpu"), torch.tensor([1])
    with torch.no_grad():
        p_logits = plain(input_features=feats, decoder_input_ids=batch["decoder_input_ids"]
                         ).logits
        mid = encoder_mid(plain.model.encoder, feats, 1)
    t_mid = teacher.logits(model, batch, None, None, device=dev, amp_dtype=None, rows=rows,
                           mid=mid)
    t_feats = teacher.logits(model, batch, feats, None, device=dev, amp_dtype=None, rows=rows)
    assert torch.allclose(t_mid, p_logits[1:], atol=1e-4)
    assert torch.allclose(t_feats, p_logits[1:], atol=1e-4)
    _, _, s_logits = token_loss(model, batch, feats, None, device=dev, amp_dtype=None)
    assert not torch.allclose(s_logits, p_logits, atol=1e-3)


@pytest.mark.slow
@pytest.mark.timeout(1200)     # 4 min seen on a loaded 2-core machine
def test_whisper_recipe_trains_the_top_encoder_layer_from_cached_states(
        tiny_whisper_dir, tmp_path):
    """cpu-profile shape (frozen encoder, cached, LoRA on the cross-attention, replay with
    distillation) with train.encoder_train_layers 1: the last encoder layer changes, the one
    below it does not, and the run finishes and exports."""
    from safetensors.torch import load_file
    torch.set_num_threads(2)
    args = ["train", str(RECIPE), "--profile", "smoke", "--set", f"output_dir={tmp_path}",
            "--set", f"model.name_or_path={tiny_whisper_dir}", "--set", "train.lr=0.01",
            "--set", "train.freeze_encoder=true", "--set", "train.encoder_train_layers=1",
            "--set", "train.cache_encoder_outputs=disk", "--set", "augment.freq_masks=0",
            "--set", "augment.time_masks=0", "--set", "lora.enabled=true",
            "--set", "lora.target_modules=[encoder_attn.q_proj,encoder_attn.v_proj]",
            "--set", f"data.replay.manifest={REPO / 'data_manifests' / 'fleurs_en.jsonl'}",
            "--set", "data.replay.limit=2", "--set", "data.replay.distill_weight=0.5",
            "--set", "export.ct2_quantization=null",
            "--set", f"select.manifest={REPO / 'data_manifests' / LIBRI_MINI}",
            "--set", "select.interpolations=[0.5, 1.0]", "--set", "select.report_by=subject",
            "--run-id", "top", "--no-progress"]
    assert main(args) == 0
    run = tmp_path / "whisper_dictation" / "top"
    w0 = load_file(tiny_whisper_dir / "model.safetensors")
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["model"]
    w1 = {k.removeprefix("base_model.model.").replace(".base_layer", ""): v
          for k, v in last.items()}                              # peft's names
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["train_loss"] is not None
    top, low = "model.encoder.layers.1.fc1.weight", "model.encoder.layers.0.fc1.weight"
    assert torch.equal(w1[low], w0[low]) and torch.equal(w1["model.encoder.conv1.weight"],
                                                          w0["model.encoder.conv1.weight"])
    assert not torch.allclose(w1[top], w0[top])
    layer = sum(v.numel() for k, v in w0.items() if k.startswith("model.encoder.layers.1."))
    norm = sum(v.numel() for k, v in w0.items() if k.startswith("model.encoder.layer_norm."))
    lora = sum(v.numel() for k, v in last.items() if "lora_" in k)
    rep = json.loads((run / "report.json").read_text())
    assert rep["trainable_parameters"] == layer + norm + lora
    assert (run / "best" / "model.safetensors").is_file()
    # the frozen layer's output, one file per clip (training, replay and validation clips)
    assert len(list((run / "encoder_cache" / "layer1_input").glob("*.pt"))) >= 4
    # the weight chosen on the real-speech set (select.manifest): the starting model and
    # each candidate decoded on it, the rule of choose_interpolation applied, best/ saved
    # with that weight; the unchanged encoder ran once per real-speech clip
    from biosig.train.whisper.select import choose_interpolation
    sel = rep["selection"]
    assert [r["alpha"] for r in sel["rows"]] == [0.0, 0.5, 1.0] and sel["n"] == 4
    assert set(sel["rows"][0]["select_groups"]) == {"1089"}           # report_by: speaker
    assert (sel["alpha"], sel["within_limit"]) == choose_interpolation(
        sel["rows"][1:], start_select_wer=sel["rows"][0]["select_wer"],
        max_increase=0.005)
    assert rep.get("interpolation", 1.0) == sel["alpha"]
    assert (run / "selection.png").is_file() and (run / "selection.json").is_file()
    # (the layer-1 input, or the whole encoder's output where the best epoch is the start)
    cached = list((run / "encoder_cache").glob("select_*/*.pt"))
    assert len(cached) == 4 and cached[0].parent.name == (
        "select_layer1_input" if rep["best_epoch"] > 0 else "select_output")
    if sel["alpha"] < 1.0:
        assert json.loads((run / "best" / "interpolation.json").read_text())["alpha"] == \
            sel["alpha"]


def test_choose_interpolation_rule():
    from biosig.train.whisper.select import choose_interpolation
    rows = [{"alpha": 0.25, "valid_wer": 0.30, "select_wer": 0.100},
            {"alpha": 0.5, "valid_wer": 0.20, "select_wer": 0.104},
            {"alpha": 0.75, "valid_wer": 0.20, "select_wer": 0.105},
            {"alpha": 1.0, "valid_wer": 0.10, "select_wer": 0.140}]
    # the best validation WER within start + 0.5 points; a tie goes to the smaller weight
    assert choose_interpolation(rows, start_select_wer=0.100, max_increase=0.005) == (0.5, True)
    assert choose_interpolation(rows, start_select_wer=0.100, max_increase=0.05) == (1.0, True)
    # none within the limit: the lowest real-speech WER, and the limit reported missed
    assert choose_interpolation(rows, start_select_wer=0.08, max_increase=0.005) == \
        (0.25, False)
    with pytest.raises(ValueError, match="no candidate"):
        choose_interpolation([], start_select_wer=0.1, max_increase=0.005)


def test_first_changed_encoder_layer():
    from biosig.train.whisper.select import first_changed_encoder_layer
    w = {"model.encoder.conv1.weight": torch.zeros(2), "model.encoder.layers.0.fc1.weight":
         torch.zeros(2), "model.encoder.layers.1.fc1.weight": torch.zeros(2),
         "model.encoder.layer_norm.weight": torch.zeros(2), "model.decoder.x": torch.zeros(2)}
    same = {k: v.clone() for k, v in w.items()}
    same["model.decoder.x"] += 1                          # only the decoder trained
    assert first_changed_encoder_layer(w, same, 2) == 2
    top = {**same, "model.encoder.layers.1.fc1.weight": torch.ones(2)}
    assert first_changed_encoder_layer(w, top, 2) == 1
    conv = {**same, "model.encoder.conv1.weight": torch.ones(2)}
    assert first_changed_encoder_layer(w, conv, 2) is None


def test_select_config_errors_name_the_key():
    from biosig.train.config import load_config
    with pytest.raises(ConfigError, match="select.manifest chooses the weight"):
        load_config(RECIPE, profile="cpu", overrides=["select.manifest=x.jsonl"])
    with pytest.raises(ConfigError, match=r"select.interpolations.*\(0, 1\]"):
        load_config(RECIPE, overrides=["select.interpolations=[0, 0.5]"])
    with pytest.raises(ConfigError, match="select.max_wer_incr"):
        load_config(RECIPE, overrides=["select.max_wer_incr=0.01"])
