"""A per-sample job's samples paired with their files, in either job layout (config `samples_per_job`)."""

import pytest

from mrdtrack.jobs import per_sample


def test_a_one_sample_job_gets_one_path_per_name():
    (job,) = per_sample(["S1"], counts="results/counts/S1.tsv", qc="results/counts/S1.qc.json")
    assert (job.sample, job.counts, job.qc) == ("S1", "results/counts/S1.tsv", "results/counts/S1.qc.json")


def test_a_chunk_job_pairs_each_sample_with_its_files_in_order():
    jobs = per_sample(["S2", "S1"], counts=["S2.tsv", "S1.tsv"], qc=("S2.json", "S1.json"))
    assert [(j.sample, j.counts, j.qc) for j in jobs] == [
        ("S2", "S2.tsv", "S2.json"),
        ("S1", "S1.tsv", "S1.json"),
    ]


def test_files_that_do_not_match_the_samples_are_refused():
    with pytest.raises(ValueError, match="1 'counts' files for 2 samples"):
        per_sample(["S1", "S2"], counts=["S1.tsv"])
