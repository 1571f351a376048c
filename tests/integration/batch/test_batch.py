"""A batch's pairs from synth's output folder (full-size pairs of a photo) and from the same pairs written as
a Parquet file are the same pairs."""

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.pairs import load_pairs


def test_synth_output_folder_and_parquet(tmp_path):
    res = CliRunner().invoke(cli, ["synth", "skimage:astronaut", "--out", str(tmp_path / "set"), "--count", "2"])
    assert res.exit_code == 0, res.output
    from_folder = load_pairs(tmp_path / "set")
    assert len(from_folder) == 2 and all(it.truth and it.left.is_file() for it in from_folder)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    table = pa.Table.from_pylist([{"id": it.id, "left": str(it.left.relative_to(tmp_path / "set")),
                                   "right": str(it.right.relative_to(tmp_path / "set"))} for it in from_folder])
    pq.write_table(table, tmp_path / "set" / "pairs.parquet")
    from_parquet = load_pairs(tmp_path / "set" / "pairs.parquet")
    assert [(it.id, it.left, it.right) for it in from_parquet] == [(it.id, it.left, it.right) for it in from_folder]
