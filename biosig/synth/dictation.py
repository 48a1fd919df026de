"""Synthesized clinical dictation: text-to-speech audio plus a manifest, for tests and benchmarks.

No public clinical dictation audio exists here, so clinical text is rendered with Debian's TTS
engines: espeak-ng (several voices/variants) and festival (``cmu_us_slt_arctic_hts``,
``kal_diphone``). Audio is written as 16 kHz 16-bit mono WAV and described by a JSONL manifest
(:mod:`biosig.manifests` schema): ``text`` is what was spoken; ``labels`` hold ``voice``,
``engine``, ``phrase_id``, ``document`` (the expected text after spoken commands), ``terms``
(medical terms, ``"; "``-separated), ``noise_snr_db`` and ``channel`` (``wideband`` or
``telephone``, :func:`telephone_channel`); ``subject`` is the voice, so voices
and phrases can be held out separately (:func:`split_held_out`).

Debian packages: ``espeak-ng festival festvox-us-slt-hts festvox-kallpc16k``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

from biosig.asr.audio import ASR_FS, load_audio, prepare_audio
from biosig.asr.commands import apply_commands
from biosig.errors import ConfigError, InputError
from biosig.fileio import atomic_path
from biosig.manifests import ManifestWriter, Record, read_manifest
from biosig.progress import track
from biosig.signal import check_fs

__all__ = ["VOICES", "Phrase", "read_phrases", "dictation_phrases", "generated_dictation",
           "render", "telephone_channel", "held_out_dictation", "clinic_terms",
           "HELD_OUT_VOICES", "TUNING_VOICES", "synth_dictation", "concatenate_long_form",
           "split_held_out", "write_held_out_split", "pink_noise", "TELEPHONE_FS"]

log = logging.getLogger(__name__)

#: Voice name -> (engine, engine argument).
VOICES = {
    "espeak-en-us": ("espeak-ng", "en-us"),
    "espeak-en-us-f3": ("espeak-ng", "en-us+f3"),
    "espeak-en-gb-m3": ("espeak-ng", "en-gb+m3"),
    "espeak-en-gb-rp-f2": ("espeak-ng", "en-gb-x-rp+f2"),
    "espeak-en-scotland": ("espeak-ng", "en-gb-scotland"),
    # more espeak accents and voice variants, for fine-tuning that generalises to unseen
    # voices (none is a held-out or tuning voice, nor its accent with its variant)
    "espeak-en-us-m1": ("espeak-ng", "en-us+m1"),
    "espeak-en-us-f2": ("espeak-ng", "en-us+f2"),
    "espeak-en-us-m4": ("espeak-ng", "en-us+m4"),
    "espeak-en-029-f4": ("espeak-ng", "en-029+f4"),
    "espeak-en-gb-lancaster-m2": ("espeak-ng", "en-gb-x-gbclan+m2"),
    "espeak-en-gb-westmidlands-f1": ("espeak-ng", "en-gb-x-gbcwmd+f1"),
    "festival-slt-hts": ("festival", "voice_cmu_us_slt_arctic_hts"),
    "festival-kal-diphone": ("festival", "voice_kal_diphone"),
}

#: Voices kept out of all development and tuning: the unseen speakers of the vocabulary
#: benchmark (``bench/dictation_vocab.py``). :func:`render` speaks them, but they are not in
#: :data:`VOICES`, so no default (``synth_dictation(voices=None)``) ever trains on them. One has
#: an accent no development voice has (New York City), the other a voice variant (female 5)
#: no development voice uses. The vocabulary code was tuned on :data:`TUNING_VOICES` instead.
HELD_OUT_VOICES = {
    "espeak-en-us-nyc": ("espeak-ng", "en-us-nyc"),
    "espeak-en-us-f5": ("espeak-ng", "en-us+f5"),
}
#: The voice the vocabulary biasing and term restoration were developed on (with
#: :func:`generated_dictation` sentences), kept apart from :data:`HELD_OUT_VOICES`.
TUNING_VOICES = {"espeak-en-us-m7": ("espeak-ng", "en-us+m7")}


@dataclass(frozen=True)
class Phrase:
    """A text to speak. ``document`` is the expected text after dictation commands."""

    id: str
    text: str
    document: str | None = None
    terms: tuple[str, ...] = ()
    source: str = ""


#: Dictation-style sentences with spoken commands and the medical terms they contain.
_DICTATION = [
    ("the patient is a sixty two year old man with hypertension and type two diabetes period "
     "he presents with chest pain radiating to the left arm period",
     ("hypertension", "diabetes", "chest pain")),
    ("current medications colon metformin five hundred milligrams twice daily comma "
     "lisinopril ten milligrams daily period new paragraph",
     ("metformin", "lisinopril", "milligrams")),
    ("on examination the abdomen is soft and non tender period bowel sounds are present period",
     ("abdomen", "bowel sounds")),
    ("blood pressure one hundred forty over ninety comma heart rate eighty eight period "
     "new line oxygen saturation ninety six percent on room air period",
     ("blood pressure", "heart rate", "oxygen saturation")),
    ("assessment colon community acquired pneumonia of the right lower lobe period scratch that "
     "assessment colon right lower lobe pneumonia period",
     ("pneumonia", "lower lobe")),
    ("plan colon start amoxicillin and review in one week period new paragraph",
     ("amoxicillin",)),
    ("the electrocardiogram shows atrial fibrillation with a rapid ventricular response period",
     ("electrocardiogram", "atrial fibrillation", "ventricular")),
    ("she reports shortness of breath on exertion comma orthopnea comma and ankle swelling "
     "period",
     ("shortness of breath", "orthopnea", "ankle swelling")),
    ("is there any history of asthma question mark no known drug allergies period",
     ("asthma", "allergies")),
    ("chest x ray shows bilateral pleural effusions and cardiomegaly period new line "
     "impression colon congestive heart failure period",
     ("pleural effusions", "cardiomegaly", "heart failure")),
    ("the patient denies fever comma cough comma or weight loss period",
     ("fever", "cough", "weight loss")),
    ("refer to cardiology for an echocardiogram period new paragraph follow up in two weeks "
     "period",
     ("cardiology", "echocardiogram")),
    ("lungs are clear to auscultation bilaterally period no wheezes or crackles period",
     ("auscultation", "wheezes", "crackles")),
    ("the patient was started on intravenous antibiotics and paracetamol for fever period",
     ("intravenous", "antibiotics", "paracetamol")),
    ("history of chronic obstructive pulmonary disease comma uses a salbutamol inhaler as "
     "needed period",
     ("chronic obstructive pulmonary disease", "salbutamol")),
    ("a systolic murmur is heard at the left sternal border period full stop",
     ("systolic murmur", "sternal border")),
]


def dictation_phrases() -> list[Phrase]:
    """Built-in dictation sentences with spoken commands ("period", "new paragraph", ...)."""
    return [Phrase(f"dict-{i:03d}", t, apply_commands(t.split()), terms, "builtin-dictation")
            for i, (t, terms) in enumerate(_DICTATION)]


# Vocabulary for generated dictation: (spoken form, is a medical term). Drug doses are spoken
# in words, as dictated.
_DRUGS = ["metformin", "lisinopril", "atorvastatin", "amlodipine", "bisoprolol", "apixaban",
          "rivaroxaban", "warfarin", "furosemide", "ramipril", "omeprazole", "levothyroxine",
          "salbutamol", "amoxicillin", "clarithromycin", "doxycycline", "prednisolone",
          "paracetamol", "ibuprofen", "sertraline", "citalopram", "gabapentin", "empagliflozin",
          "spironolactone", "clopidogrel", "tamsulosin", "allopurinol", "simvastatin",
          "lansoprazole", "nitrofurantoin", "co amoxiclav", "digoxin", "edoxaban", "sitagliptin",
          "beclometasone", "montelukast", "bendroflumethiazide", "candesartan", "metoprolol",
          "ceftriaxone"]
_DOSES = ["two point five", "five", "ten", "twenty", "twenty five", "forty", "fifty",
          "one hundred", "two hundred fifty", "five hundred"]
_FREQ = ["once daily", "twice daily", "three times daily", "at night", "as needed",
         "every eight hours"]
_CONDITIONS = ["hypertension", "type two diabetes", "atrial fibrillation", "heart failure",
               "chronic kidney disease", "asthma", "chronic obstructive pulmonary disease",
               "hypothyroidism", "osteoarthritis", "gastro oesophageal reflux disease",
               "pulmonary embolism", "deep vein thrombosis", "community acquired pneumonia",
               "urinary tract infection", "cellulitis", "angina", "myocardial infarction",
               "transient ischaemic attack", "migraine", "gout", "anaemia", "sepsis",
               "hyperlipidaemia", "depression", "obstructive sleep apnoea"]
_SYMPTOMS = ["chest pain", "shortness of breath", "palpitations", "dizziness", "syncope",
             "productive cough", "haemoptysis", "orthopnoea", "ankle swelling", "fever",
             "night sweats", "weight loss", "abdominal pain", "nausea", "vomiting",
             "dysuria", "headache", "photophobia", "fatigue", "wheeze", "pleuritic pain",
             "back pain", "joint pain", "diarrhoea", "confusion"]
_TESTS = ["electrocardiogram", "echocardiogram", "chest x ray", "full blood count",
          "renal function", "liver function tests", "troponin", "d dimer", "urinalysis",
          "computed tomography pulmonary angiogram", "spirometry", "thyroid function tests",
          "haemoglobin a one c", "lipid profile", "blood cultures"]
_FINDINGS = ["sinus rhythm", "sinus tachycardia", "atrial fibrillation with a rapid ventricular "
             "response", "left ventricular hypertrophy", "bilateral pleural effusions",
             "cardiomegaly", "right lower lobe consolidation", "a raised white cell count",
             "an acute kidney injury", "mildly impaired left ventricular function",
             "no acute abnormality", "st elevation in the inferior leads",
             "a normocytic anaemia", "raised inflammatory markers"]
_EXAM = ["the abdomen is soft and non tender", "heart sounds are normal with no murmurs",
         "there are bibasal crackles", "there is a pansystolic murmur at the apex",
         "there is pitting oedema to the mid shins", "the chest is clear on auscultation",
         "there is an expiratory wheeze throughout", "the jugular venous pressure is raised",
         "there is tenderness in the right iliac fossa", "the calves are soft and non tender",
         "pupils are equal and reactive to light", "there is no focal neurology"]
_PEOPLE = ["the patient is a {age} year old {sex}", "this {age} year old {sex}",
           "a {age} year old {sex} known to the practice"]
_AGES = ["thirty four", "forty one", "fifty two", "fifty eight", "sixty three",
         "sixty seven", "seventy two", "seventy nine", "eighty one", "eighty six"]
_SEXES = ["man", "woman", "gentleman", "lady", "retired teacher", "smoker"]
_ALLERGY_REACTIONS = ["a rash", "anaphylaxis", "swelling of the lips", "nausea"]
_WEEKS = ["one", "two", "three", "four", "six", "twelve"]

_TEMPLATES = [
    ("{person} presents with {symptom} and {symptom2} period",),
    ("{person} with a history of {cond} presents with {symptom} period",),
    ("past medical history colon {cond} comma {cond2} and {cond3} period new line",),
    ("current medications colon {drug} {dose} milligrams {freq} comma {drug2} {dose2} "
     "milligrams {freq2} period",),
    ("plan colon start {drug} {dose} milligrams {freq} and repeat the {test} in {weeks} weeks "
     "period",),
    ("the {test} shows {finding} period new paragraph impression colon {cond} period",),
    ("allergies colon {drug} causes {reaction} period",),
    ("on examination {exam} period {exam2} period",),
    ("is the patient still taking {drug} question mark please check with the pharmacy "
     "period",),
    ("assessment colon {cond} period scratch that assessment colon {cond2} period",),
    ("{symptom} for {weeks} weeks comma worse on exertion period no {symptom2} period",),
    ("stop {drug} and switch to {drug2} {dose} milligrams {freq} period new line",),
    ("request {test} and {test2} period review in {weeks} weeks period",),
    ("impression colon {cond} complicated by {cond2} period new paragraph",),
    ("{exam} period the {test} shows {finding} period",),
]


#: Sentence shapes used only by :func:`held_out_dictation`: none of them is a shape of
#: :data:`_TEMPLATES`, so a model fine-tuned on generated dictation has never heard them.
_HELD_OUT_TEMPLATES = [
    ("{person} was admitted overnight with {symptom} period the {test} showed {finding} "
     "period",),
    ("she has been taking {drug} {dose} milligrams {freq} for her {cond} period",),
    ("he was commenced on {drug} and {drug2} by the medical registrar period new line",),
    ("differential diagnosis includes {cond} comma {cond2} or {cond3} period",),
    ("no change to the {drug} period increase {drug2} to {dose} milligrams {freq} period",),
    ("he describes {symptom} with associated {symptom2} since last {day} period",),
    ("the {test} and the {test2} are both still awaited period",),
    ("known {cond} on {drug} comma now with worsening {symptom} period",),
    ("discharge medications colon {drug} {dose} milligrams {freq} and {drug2} as before "
     "period",),
    ("the {test} was reported as {finding} comma in keeping with {cond} period",),
    ("please arrange a {test} within {weeks} weeks and see her again afterwards period",),
    ("{drug} was withheld on {day} because of {symptom} period new paragraph",),
    ("summary colon {cond} with {finding} on the {test} period",),
    ("family history of {cond} period she has never smoked period",),
    ("the {symptom} has settled since starting {drug} period",),
]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def clinic_terms() -> list[str]:
    """The clinic vocabulary the dictation generators draw from: drugs, conditions, symptoms,
    tests and findings (119 terms, in that order) -- what a clinic's ``--vocab`` list holds."""
    terms: list[str] = []
    for pool in (_DRUGS, _CONDITIONS, _SYMPTOMS, _TESTS, _FINDINGS):
        terms += [t for t in pool if t not in terms]
    return terms


def _from_templates(templates, n: int, seed: int, prefix: str, source: str, *,
                    balance_terms: bool = False) -> list[Phrase]:
    rng = np.random.default_rng(seed)
    pools = {"drug": _DRUGS, "dose": _DOSES, "freq": _FREQ, "cond": _CONDITIONS,
             "symptom": _SYMPTOMS, "test": _TESTS, "finding": _FINDINGS, "exam": _EXAM,
             "reaction": _ALLERGY_REACTIONS, "weeks": _WEEKS, "day": _DAYS}
    term_pools = {"drug", "cond", "symptom", "test", "finding"}
    term_count: dict[str, int] = {}        # with balance_terms: sentences each term is in
    out: list[Phrase] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ConfigError(f"{prefix} dictation: cannot make {n} distinct sentences")
        (template,) = templates[int(rng.integers(len(templates)))]
        used: dict[str, list[str]] = {}
        terms: list[str] = []

        def fill(m: re.Match, used=used, terms=terms) -> str:
            key = m.group(1)
            if key == "person":
                return str(rng.choice(_PEOPLE)).format(age=rng.choice(_AGES),
                                                       sex=rng.choice(_SEXES))
            base = key.rstrip("0123456789")
            choices = [c for c in pools[base] if c not in used.get(base, [])]
            if balance_terms and base in term_pools:
                least = min(term_count.get(c, 0) for c in choices)
                choices = [c for c in choices if term_count.get(c, 0) == least]
            v = str(choices[int(rng.integers(len(choices)))])
            used.setdefault(base, []).append(v)
            if base in term_pools:
                terms.append(v)
            return v

        text = re.sub(r"\{(\w+)\}", fill, template)
        if text in seen:
            continue
        seen.add(text)
        for t in dict.fromkeys(terms):
            term_count[t] = term_count.get(t, 0) + 1
        out.append(Phrase(f"{prefix}-{seed}-{len(out):04d}", text,
                          apply_commands(text.split()), tuple(dict.fromkeys(terms)), source))
    return out


def generated_dictation(n: int, *, seed: int = 0, balance_terms: bool = False) -> list[Phrase]:
    """``n`` clinical dictation sentences built from templates and a vocabulary of drugs,
    conditions, symptoms, tests and findings, with spoken commands ("period", "comma",
    "new paragraph", "scratch that", ...). Seeded and reproducible; ids ``gen-<seed>-<k>``.

    Different sentences reuse the same vocabulary, as one clinic's dictations do, so a model
    fine-tuned on some sentences can be scored on others (held-out phrases) for WER and for
    recall of the medical terms (``Phrase.terms``: the drugs, conditions, symptoms, tests and
    findings spoken).

    With ``balance_terms`` each slot takes one of the terms used in the fewest sentences so far
    (ties at random), so every term of :func:`clinic_terms` is spoken about equally often once
    ``n`` is large enough (a fine-tune's training text should cover the clinic's whole
    vocabulary; uniform draws leave some terms out). Not the same sentences as without it,
    so their ids are ``genb-<seed>-<k>``.
    """
    return _from_templates(_TEMPLATES, n, seed, "genb" if balance_terms else "gen",
                           "generated-dictation", balance_terms=balance_terms)


def held_out_dictation(n: int, *, seed: int = 0) -> list[Phrase]:
    """``n`` dictation sentences of shapes that :func:`generated_dictation` never makes
    (:data:`_HELD_OUT_TEMPLATES`), over the same clinical vocabulary; ids
    ``heldout-<seed>-<k>``. For benchmarks of models tuned on generated dictation: the
    sentences are new, the terms are the clinic's."""
    return _from_templates(_HELD_OUT_TEMPLATES, n, seed, "heldout", "held-out-dictation")


def _pid(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def read_phrases(path, *, limit: int | None = None) -> list[Phrase]:
    """Read texts to speak.

    Accepted: ``.txt`` (one phrase per line), ``.csv`` (a ``phrase`` or ``text`` column, e.g.
    ``medical_speech_text/phrases.csv``), ``.jsonl`` (``text`` and optional ``id``, ``terms``,
    ``document``), a PriMock57 note ``.json`` (its ``presenting_complaint``) or a folder of
    them, the word ``builtin`` for :func:`dictation_phrases` and ``generated:N[:SEED]`` for
    :func:`generated_dictation` (``generated-balanced:N[:SEED]`` with ``balance_terms``).
    """
    if str(path) == "builtin":
        return dictation_phrases()[:limit]
    if str(path).startswith(("generated:", "generated-balanced:")):
        parts = str(path).split(":")
        try:
            if len(parts) > 3:
                raise ValueError
            n, seed = int(parts[1]), int(parts[2]) if len(parts) > 2 else 0
        except (ValueError, IndexError):
            raise ConfigError(f"texts {path!r}: expected {parts[0]}:N or {parts[0]}:N:SEED") \
                from None
        return generated_dictation(n, seed=seed,
                                   balance_terms=parts[0] == "generated-balanced")[:limit]
    p = Path(path)
    if p.is_dir():
        out = []
        for f in sorted(p.iterdir()):
            if f.suffix.lower() in (".txt", ".csv", ".jsonl", ".json"):
                out.extend(read_phrases(f))
        return out[:limit]
    if not p.is_file():
        raise InputError(p, "no such file (expected .txt, .csv, .jsonl, .json or a folder)")
    suffix = p.suffix.lower()
    out: list[Phrase] = []
    try:
        if suffix == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append(Phrase(_pid(p.stem, line.strip()), line.strip(), source=p.name))
        elif suffix == ".csv":
            with open(p, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                col = next((c for c in ("phrase", "text") if c in (reader.fieldnames or [])),
                           None)
                if col is None:
                    raise InputError(p, f"CSV needs a 'phrase' or 'text' column, has "
                                        f"{reader.fieldnames}")
                for row in reader:
                    t = (row[col] or "").strip()
                    if t:
                        out.append(Phrase(_pid(p.stem, t), t, source=p.name))
        elif suffix == ".jsonl":
            for k, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                d = json.loads(line)
                if not isinstance(d, dict) or not isinstance(d.get("text"), str):
                    raise InputError(p, f"line {k}: expected an object with a 'text' string")
                out.append(Phrase(str(d.get("id") or _pid(p.stem, d["text"])), d["text"],
                                  d.get("document"), tuple(d.get("terms") or ()), p.name))
        elif suffix == ".json":
            d = json.loads(p.read_text(encoding="utf-8"))
            t = d.get("presenting_complaint") if isinstance(d, dict) else None
            if isinstance(t, str) and t.strip():
                out.append(Phrase(f"{p.stem}-pc", t.strip(), source=p.name))
        else:
            raise InputError(p, f"unsupported text file {suffix!r} (expected .txt, .csv, "
                                ".jsonl, .json)")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(p, f"cannot parse ({type(exc).__name__}: {exc})") from exc
    # the same text twice keeps one id
    seen, uniq = set(), []
    for ph in out:
        if ph.id not in seen:
            seen.add(ph.id)
            uniq.append(ph)
    return uniq[:limit]


def _check_engine(engine: str) -> str:
    exe = "text2wave" if engine == "festival" else engine
    found = shutil.which(exe)
    if found is None:
        pkg = "festival" if engine == "festival" else "espeak-ng"
        raise ConfigError(f"voice engine {engine}: {exe} not found; install the Debian package "
                          f"{pkg} (apt-get install -y {pkg})")
    return found


def render(text: str, voice: str, *, rate_wpm: int | None = None) -> np.ndarray:
    """Speak ``text`` with ``voice`` (a key of :data:`VOICES`).

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        16 kHz mono audio.
    """
    known = {**VOICES, **HELD_OUT_VOICES, **TUNING_VOICES}
    if voice not in known:
        raise ConfigError(f"voice {voice!r}: expected one of {sorted(known)}")
    engine, arg = known[voice]
    exe = _check_engine(engine)
    with tempfile.TemporaryDirectory(prefix="biosig-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        if engine == "espeak-ng":
            cmd = [exe, "-v", arg, "-w", str(wav)]
            if rate_wpm:
                cmd += ["-s", str(int(rate_wpm))]
            cmd.append(text)
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        else:
            txt = Path(tmp) / "in.txt"
            txt.write_text(text, encoding="utf-8")
            subprocess.run([exe, str(txt), "-o", str(wav), "-eval", f"({arg})"], check=True,
                           capture_output=True, timeout=300)
        x, fs = sf.read(str(wav), dtype="float32", always_2d=True)
    return prepare_audio(x.T, fs=float(fs))


def _add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    p = float(np.mean(x.astype(np.float64) ** 2)) or 1e-12
    noise = rng.standard_normal(x.size).astype(np.float32)
    noise *= np.float32(np.sqrt(p / 10 ** (snr_db / 10)))
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-variance 1/f (pink) noise, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (np.std(x) or 1.0)).astype(np.float32)


#: The telephone channel's sampling rate and pass band (ITU-T G.712, narrowband telephony).
TELEPHONE_FS = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)


def telephone_channel(audio: np.ndarray, *, fs: float, snr_db: float,
                      rng: np.random.Generator, band_hz=TELEPHONE_BAND_HZ) -> np.ndarray:
    """What a telephone line makes of ``audio``: background noise in the room, the
    300-3400 Hz band, 8 kHz sampling and 8-bit mu-law (G.711) coding.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
        Clean speech in [-1, 1].
    fs : float > 0
        Its sampling rate.
    snr_db : float
        Ratio of the speech's power to the pink noise added before the channel (10-20 dB is
        a quiet to a busy room).
    rng : np.random.Generator
        Source of the noise.
    band_hz : (lo, hi)
        Pass band of the line (a 4th-order Butterworth band-pass, causal like a real line).

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]
        Audio at :data:`TELEPHONE_FS` (8 kHz).
    """
    fs = check_fs(fs)
    lo, hi = float(band_hz[0]), float(band_hz[1])
    if not 0 < lo < hi < TELEPHONE_FS / 2:
        raise ConfigError(f"band_hz: expected 0 < lo < hi < {TELEPHONE_FS / 2}, got {band_hz}")
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    p = float(np.mean(x ** 2)) or 1e-12
    x = x + pink_noise(x.size, rng) * np.sqrt(p / 10 ** (snr_db / 10))
    g = gcd(int(round(fs)), TELEPHONE_FS)
    y = resample_poly(x, TELEPHONE_FS // g, int(round(fs)) // g)
    y = sosfilt(butter(4, (lo, hi), btype="bandpass", fs=TELEPHONE_FS, output="sos"), y)
    y = np.clip(y, -1.0, 1.0)
    mu = 255.0                                            # G.711 mu-law, 8 bits
    code = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * 127.0) / 127.0
    return (np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu).astype(np.float32)


def _write_wav(path: Path, x: np.ndarray, fs: int = ASR_FS) -> None:
    with atomic_path(path) as tmp:
        sf.write(str(tmp), x, fs, subtype="PCM_16")


@dataclass
class SynthResult:
    manifest: Path
    n_written: int
    n_skipped: int
    long_form: list[Path] = field(default_factory=list)


def _clip_rng(seed: int, rid: str) -> np.random.Generator:
    """A generator for one clip, the same on every run (reruns resume)."""
    h = int.from_bytes(hashlib.sha1(rid.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, h])


def synth_dictation(phrases: list[Phrase], out_dir, *, voices=None, noise_snr_db=None,
                    long_form_s: float | None = None, seed: int = 0, gap_s: float = 0.6,
                    telephone_frac: float = 0.0, telephone_snr_db=(10.0, 20.0),
                    progress: bool = True) -> SynthResult:
    """Render ``phrases`` with each voice into ``out_dir`` and write ``manifest.jsonl``.

    Parameters
    ----------
    phrases : list of Phrase
    out_dir : path
        Receives ``audio/<voice>/<phrase_id>.wav`` and ``manifest.jsonl``; reruns skip lines
        already in the manifest (resumable).
    voices : list of str, optional
        Keys of :data:`VOICES` (default: all), or of :data:`HELD_OUT_VOICES` /
        :data:`TUNING_VOICES` when asked for by name.
    noise_snr_db : float, optional
        Add white Gaussian noise at this signal-to-noise ratio.
    long_form_s : float, optional
        Also concatenate each voice's phrases (with ``gap_s`` pauses) into long recordings of
        about this length, listed in ``long_form.jsonl``.
    seed : int
        Noise seed.
    telephone_frac : float in [0, 1]
        Share of the (voice, phrase) clips that also get a telephone copy
        (:func:`telephone_channel`: pink room noise, 300-3400 Hz, 8 kHz, mu-law), written as
        ``audio/<voice>-telephone/<phrase_id>.wav`` at 8 kHz with id ``<voice>--<phrase>--tel``
        and ``labels.channel = "telephone"`` (the others say ``"wideband"``). Which clips, and
        each one's SNR, are drawn per clip from ``seed``, so reruns make the same choice.
    telephone_snr_db : (low, high)
        The telephone copies' SNR is drawn uniformly from this range.

    Returns
    -------
    SynthResult
    """
    known = {**VOICES, **HELD_OUT_VOICES, **TUNING_VOICES}
    voices = list(voices or VOICES)
    for v in voices:
        if v not in known:
            raise ConfigError(f"voice {v!r}: expected one of {sorted(known)}")
    if not 0.0 <= telephone_frac <= 1.0:
        raise ConfigError(f"telephone_frac: expected in [0, 1], got {telephone_frac}")
    lo_snr, hi_snr = (float(x) for x in telephone_snr_db)
    if lo_snr > hi_snr:
        raise ConfigError(f"telephone_snr_db: expected (low, high), got {telephone_snr_db}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jobs = [(v, ph) for v in voices for ph in phrases]
    it = track(jobs, desc="synth-dictation", unit="phrase", enabled=progress)
    n_skipped = 0

    def record(rid, rel, x, fs, v, ph, channel, snr):
        labels = {"voice": v, "engine": known[v][0], "phrase_id": ph.id,
                  "document": ph.document, "terms": "; ".join(ph.terms) or None,
                  "noise_snr_db": None if snr is None else round(float(snr), 2),
                  "channel": channel}
        return Record(id=rid, path=rel.as_posix(), modality="speech", fs=float(fs),
                      num_samples=int(x.size), duration_s=round(x.size / fs, 6),
                      channels=["audio"], subject=v, labels=labels, text=ph.text,
                      corpus="synth-dictation", source=known[v][0])

    with ManifestWriter(out / "manifest.jsonl") as w:
        for v, ph in it:
            rid = f"{v}--{ph.id}"
            crng = _clip_rng(seed, rid)
            tel = telephone_frac > 0 and crng.random() < telephone_frac
            todo = [r for r in ([rid] + ([rid + "--tel"] if tel else [])) if r not in w]
            if not todo:  # written by an earlier run: resume
                n_skipped += 1
                continue
            x = render(ph.text, v)
            if rid in todo:
                xw = x if noise_snr_db is None else _add_noise(x, float(noise_snr_db), rng)
                rel = Path("audio") / v / f"{ph.id}.wav"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                _write_wav(out / rel, xw)
                w.write(record(rid, rel, xw, ASR_FS, v, ph, "wideband", noise_snr_db))
            if rid + "--tel" in todo:
                snr = crng.uniform(lo_snr, hi_snr)
                xt = telephone_channel(x, fs=ASR_FS, snr_db=snr, rng=crng)
                rel = Path("audio") / f"{v}-telephone" / f"{ph.id}.wav"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                _write_wav(out / rel, xt, fs=TELEPHONE_FS)
                w.write(record(rid + "--tel", rel, xt, TELEPHONE_FS, v, ph, "telephone", snr))
        n_written = w.n_written
    long_paths = []
    if long_form_s:
        long_paths = concatenate_long_form(out / "manifest.jsonl", out, target_s=long_form_s,
                                           gap_s=gap_s)
    return SynthResult(out / "manifest.jsonl", n_written, n_skipped, long_paths)


def concatenate_long_form(manifest, out_dir, *, target_s: float, gap_s: float = 0.6,
                          group_by: str = "voice") -> list[Path]:
    """Concatenate a manifest's recordings (per voice) into long recordings of ``target_s``.

    Writes ``long/<group>-<k>.wav`` and ``long_form.jsonl`` (one line per long recording, text
    joined with spaces, ``labels.parts`` the ids joined with ``;``).
    """
    man = Path(manifest)
    out = Path(out_dir)
    groups: dict[str, list] = {}
    for rec in read_manifest(man):
        g = str(rec.labels.get(group_by) or rec.subject or "all")
        groups.setdefault(g, []).append(rec)
    gap = np.zeros(int(gap_s * ASR_FS), dtype=np.float32)
    paths = []
    (out / "long").mkdir(parents=True, exist_ok=True)
    with ManifestWriter(out / "long_form.jsonl", overwrite=True) as w:
        for g, recs in groups.items():
            k, cur, texts, ids = 0, [], [], []

            def flush(g=g):
                nonlocal k, cur, texts, ids
                if not cur:
                    return
                x = np.concatenate(cur)
                rel = Path("long") / f"{g}-{k:02d}.wav"
                _write_wav(out / rel, x)
                paths.append(out / rel)
                w.write(Record(id=f"long-{g}-{k:02d}", path=rel.as_posix(), modality="speech",
                               fs=float(ASR_FS), num_samples=int(x.size),
                               duration_s=round(x.size / ASR_FS, 6), channels=["audio"],
                               subject=g, labels={"parts": ";".join(ids)},
                               text=" ".join(texts), corpus="synth-dictation-long"))
                k, cur, texts, ids = k + 1, [], [], []

            for rec in recs:
                x = load_audio(rec.resolve_path(manifest_dir=man.parent))
                cur += [x, gap]
                texts.append(rec.text or "")
                ids.append(rec.id)
                if sum(c.size for c in cur) >= target_s * ASR_FS:
                    flush()
            flush()
    return paths


def split_held_out(records, *, test_voices=(), test_phrases=()):
    """Split manifest records into (train, test): a line is test if its voice or phrase is held
    out, and dropped from train if either one is (no voice or phrase appears on both sides)."""
    tv, tp = set(test_voices), set(test_phrases)
    train, test = [], []
    for r in records:
        v, p = r.labels.get("voice"), r.labels.get("phrase_id")
        if v in tv and p in tp:
            test.append(r)
        elif v not in tv and p not in tp:
            train.append(r)
    return train, test


def write_held_out_split(manifest, *, test_voices, test_phrases=None, test_phrase_frac=None,
                         seed: int = 0, only_voices=None, only_phrases=None
                         ) -> tuple[Path, Path, int, int]:
    """Write ``train.jsonl`` and ``test.jsonl`` beside ``manifest`` (:func:`split_held_out`).

    Test phrases are ``test_phrases`` (ids) or a seeded ``test_phrase_frac`` of the phrase ids.
    Lines keep the manifest's relative paths (same folder). ``only_voices`` / ``only_phrases``
    (ids) keep only those lines, for a folder that also holds earlier syntheses.

    Returns
    -------
    (train_path, test_path, n_train, n_test)
    """
    man = Path(manifest)
    recs = list(read_manifest(man))
    keep_v = None if only_voices is None else set(only_voices)
    keep_p = None if only_phrases is None else set(only_phrases)
    recs = [r for r in recs if (keep_v is None or r.labels.get("voice") in keep_v)
            and (keep_p is None or r.labels.get("phrase_id") in keep_p)]
    unknown = set(test_voices) - {r.labels.get("voice") for r in recs}
    if unknown:
        raise ConfigError(f"--test-voices: {sorted(unknown)} not in {man}")
    if test_phrases is None:
        if not test_phrase_frac or not 0 < test_phrase_frac < 1:
            raise ConfigError(f"--test-phrase-frac is {test_phrase_frac!r}, expected a number "
                              "between 0 and 1")
        ids = sorted({r.labels.get("phrase_id") for r in recs})
        rng = np.random.default_rng(seed)
        k = max(1, round(test_phrase_frac * len(ids)))
        test_phrases = [ids[i] for i in rng.permutation(len(ids))[:k]]
    train, test = split_held_out(recs, test_voices=test_voices, test_phrases=test_phrases)
    paths = []
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        with ManifestWriter(man.parent / name, overwrite=True) as w:
            for r in rows:
                w.write(r)
        paths.append(man.parent / name)
    return paths[0], paths[1], len(train), len(test)
