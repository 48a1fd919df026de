"""bench/recipes.py's ``--replot``: the what-was-tried plot drawn again from the rows kept in
``recipes.json``, with no corpus, run folder or baseline at hand."""

import json


def test_replot_draws_the_stored_rows_and_names_an_entry_without_them(tmp_path, capsys,
                                                                     bench_script):
    recipes = bench_script("recipes")
    entry = {"corpus": "cinc2017", "target": {"metric": "cinc2017_f1", "value": 0.83},
             "tried": {"per_fold": False,
                       "rows": [{"label": "network alone", "valid": 0.79, "cv": None},
                                {"label": "probs+features / histgb", "valid": 0.84,
                                 "cv": 0.83}],
                       "test": [{"label": "network", "value": 0.78},
                                {"label": "baseline", "value": 0.76}]}}
    out = tmp_path / "recipes.json"
    out.write_text(json.dumps({"recipes": {"ecg_af_cinc2017": entry,
                                           "eeg_seizure_bonn": {"corpus": "bonn"}}}))
    (tmp_path / "recipes").mkdir()
    assert recipes.main(["--corpora", str(tmp_path / "absent"), "--out", str(out),
                         "--replot"]) == 0
    png = tmp_path / "recipes" / "ecg_af_cinc2017_tried.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(out.read_text())["recipes"]
    assert saved["ecg_af_cinc2017"]["tried_png"] == str(png)
    assert saved["ecg_af_cinc2017"]["tried"] == entry["tried"]
    assert "eeg_seizure_bonn: no stored rows" in capsys.readouterr().err
