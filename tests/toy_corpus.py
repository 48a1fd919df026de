"""Small synthetic corpora for training tests: two-second recordings per subject, written as
WAV files with their manifest (shared by the engine, hybrid and report tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

FS = 1000


def write_toy_corpus(root: Path, manifest: str, *, n_subjects: int, signal, labels,
                     extra=None, per_subject: int = 2) -> Path:
    """``per_subject`` recordings ``s<SS>_<k>.wav`` of 2 s at :data:`FS` per subject, and
    ``root / manifest`` listing them (modality pcg, subject ``p<s>``).

    ``signal(s, t, rng)`` gives subject ``s``'s waveform on the time axis ``t`` (one shared
    generator, seeded 0, drawn from in recording order); ``labels(s)`` its labels;
    ``extra(s, k)`` other Record fields of recording ``k``.
    """
    from biosig.manifests import Record, write_manifest
    rng = np.random.default_rng(0)
    t = np.arange(2 * FS) / FS
    recs = []
    for s in range(n_subjects):
        for k in range(per_subject):
            x = signal(s, t, rng)
            name = f"s{s:02d}_{k}.wav"
            sf.write(root / name, x.astype(np.float32), FS)
            recs.append(Record(id=name[:-4], path=name, modality="pcg", fs=float(FS),
                               num_samples=t.size, duration_s=2.0, channels=["audio"],
                               subject=f"p{s}", labels=labels(s),
                               **(extra(s, k) if extra is not None else {})))
    write_manifest(recs, root / manifest)
    return root
