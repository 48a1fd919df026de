"""Spoken dictation commands: the table and its application to recognised words."""

import pytest

from biosig.asr.commands import CommandTable, apply_commands
from biosig.errors import ConfigError


def run(text, table=None):
    return apply_commands(text.split(), table)


@pytest.mark.parametrize("spoken, expected", [
    ("the patient is stable period", "The patient is stable."),
    ("the patient is stable full stop", "The patient is stable."),
    ("no fever comma no cough", "No fever, no cough"),
    ("plan colon rest", "Plan: rest"),
    ("any allergies question mark", "Any allergies?"),
    ("first line new line second line", "First line\nSecond line"),
    ("history period new paragraph exam period", "History.\n\nExam."),
    # Whisper's own punctuation and capitals around a spoken command
    ("Patient is stable. Period. New paragraph. Plan, colon, rest.", "Patient is stable.\n\n"
                                                                      "Plan: rest."),
    ("Chest pain, comma, Shortness of breath.", "Chest pain, shortness of breath."),
])
def test_commands(spoken, expected):
    assert run(spoken) == expected


def test_scratch_that_removes_sentence_in_progress():
    assert run("no cough period no fever comma rash scratch that") == "No cough."


def test_scratch_that_on_empty_sentence_removes_last_sentence():
    assert run("no cough period no fever period scratch that plan period") == "No cough. Plan."


def test_scratch_that_at_start_is_harmless():
    assert run("scratch that hello") == "Hello"


def test_custom_table_from_dict_and_yaml(tmp_path):
    t = CommandTable.from_dict({"insert": {"semicolon": ";", "next item": "\n- "},
                                "scratch": ["delete that"]})
    assert run("a semicolon b next item c delete that", t) == "A; b\n-"
    assert run("a semicolon b", t) == "A; b"
    assert run("a b delete that", t) == ""
    # "period" is not a command in this table
    assert run("a period", t) == "A period"
    p = tmp_path / "cmds.yaml"
    p.write_text("insert:\n  stop: '.'\nscratch: [undo]\n")
    t2 = CommandTable.from_yaml(p)
    assert run("fine stop next undo", t2) == "Fine."


def test_table_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^commands: key 'inserts': unknown key \(expected "
                                          r"one of insert, scratch\)$"):
        CommandTable.from_dict({"inserts": {}})
    with pytest.raises(ConfigError, match=r"^commands: key 'insert.period': Input should be a "
                                          r"valid string \(got 1\)$"):
        CommandTable.from_dict({"insert": {"period": 1}})
    with pytest.raises(ConfigError, match=r"^commands: key 'scratch': Input should be a valid "
                                          r"list \(got 'scratch that'\)$"):
        CommandTable.from_dict({"scratch": "scratch that"})
    with pytest.raises(ConfigError, match="both insert and scratch"):
        CommandTable.from_dict({"insert": {"undo": "."}, "scratch": ["undo"]})
    p = tmp_path / "bad.yaml"
    p.write_text("insert: [")
    with pytest.raises(ConfigError, match="bad.yaml: cannot read"):
        CommandTable.from_yaml(p)


def test_empty_input():
    assert apply_commands([]) == ""
