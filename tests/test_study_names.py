"""What ``--study`` names: a study in the studies folders, or a study file whose stem is the stored study's name."""

from __future__ import annotations

from pathlib import Path

from vmpo_tune.study_names import is_study_path, stored_study_name


def test_a_study_file_is_stored_under_its_stem_and_a_name_under_itself():
    cases = {  # what --study was given: the stored study's name
        "hopper": "hopper",
        "hopper.yaml": "hopper",
        "my.studies/toy.yml": "toy",
        "elsewhere/toy": "toy",
        "toy.v2": "toy.v2",  # a name with a dot, not a file
    }
    assert {given: stored_study_name(given) for given in cases} == cases
    assert [is_study_path(given) for given in cases] == [False, True, True, True, False]
    assert stored_study_name(Path("toy.v2")) == "toy"  # a Path is a file (how the search's spec names a study)
