"""Corpus builders: ``prepare_<corpus>(root) -> iterator of Record``, one per corpus (lhotse style).

:data:`CORPORA` names each builder with its default stratification key (the main label used by
patient-wise splits) for ``biosig manifest build``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from biosig.errors import ConfigError
from biosig.manifests.corpora.audio_folder import prepare_audio_folder
from biosig.manifests.corpora.bonn import BONN_SETS, prepare_bonn
from biosig.manifests.corpora.cinc2017 import CINC2017_CLASSES, prepare_cinc2017
from biosig.manifests.corpora.circor2022 import prepare_circor2022, read_circor_segmentation
from biosig.manifests.corpora.covid19_cough import prepare_covid19_cough
from biosig.manifests.corpora.delhi_epilepsy import DELHI_FS, prepare_delhi_epilepsy
from biosig.manifests.corpora.eegmmidb import EEGMMIDB_RUNS, prepare_eegmmidb
from biosig.manifests.corpora.icbhi2017 import (
    parse_icbhi_filename,
    prepare_icbhi2017,
    read_icbhi_cycles,
)
from biosig.manifests.corpora.librispeech import prepare_librispeech
from biosig.manifests.corpora.speechocean762 import prepare_speechocean762
from biosig.manifests.corpora.wfdb import MITDB_SAME_SUBJECT, prepare_wfdb
from biosig.manifests.schema import Record

__all__ = ["CORPORA", "Corpus", "get_corpus", "prepare_wfdb", "prepare_cinc2017",
           "prepare_circor2022", "read_circor_segmentation", "prepare_icbhi2017",
           "read_icbhi_cycles", "parse_icbhi_filename", "prepare_covid19_cough", "prepare_bonn",
           "prepare_delhi_epilepsy", "prepare_eegmmidb", "prepare_librispeech",
           "prepare_audio_folder", "prepare_speechocean762", "BONN_SETS", "CINC2017_CLASSES",
           "DELHI_FS", "EEGMMIDB_RUNS", "MITDB_SAME_SUBJECT"]


@dataclass(frozen=True)
class Corpus:
    """A corpus builder and how to split it.

    Attributes
    ----------
    name : str
    prepare : callable
        ``prepare(root, **options) -> Iterator[Record]``.
    stratify : callable or None
        Record -> stratum for :func:`~biosig.manifests.splits.assign_splits`.
    stratify_doc : str
        What the stratum is, for help texts and README.
    keep_preset_split : bool
        The builder sets ``split`` itself (official splits); ``build`` keeps lines that have one.
    """

    name: str
    prepare: Callable[..., Iterator[Record]]
    stratify: Callable[[Record], object] | None
    stratify_doc: str
    keep_preset_split: bool = False


def _label(key: str):
    def get(r: Record):
        return r.labels.get(key)
    return get


CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus("wfdb", prepare_wfdb, None, "none (header comments differ between databases)"),
    Corpus("cinc2017", prepare_cinc2017, _label("rhythm"), "labels.rhythm"),
    Corpus("circor2022", prepare_circor2022, _label("murmur"), "labels.murmur (patient-level)"),
    Corpus("icbhi2017", prepare_icbhi2017, _label("diagnosis"),
           "labels.diagnosis (patient-level)"),
    Corpus("covid19_cough", prepare_covid19_cough,
           lambda r: (r.labels.get("covid19"), r.source), "labels.covid19 x source"),
    Corpus("bonn", prepare_bonn, _label("set"), "labels.set"),
    Corpus("delhi_epilepsy", prepare_delhi_epilepsy, _label("stage"), "labels.stage"),
    Corpus("eegmmidb", prepare_eegmmidb, None, "none (every subject has every run)"),
    Corpus("librispeech", prepare_librispeech, None,
           "none; official subset splits (train-*/dev-*/test-*) are kept", True),
    Corpus("speechocean762", prepare_speechocean762, None,
           "none; the corpus's train speakers -> train, its test speakers -> valid (kept)", True),
    Corpus("audio_folder", prepare_audio_folder, None, "none"),
)}


def get_corpus(name: str) -> Corpus:
    """The :class:`Corpus` called ``name``; ConfigError listing the known names otherwise."""
    try:
        return CORPORA[name]
    except KeyError:
        raise ConfigError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None
