"""benchmarks/ab_revision.py: another revision of ydrop imported next to today's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ab_revision(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import ab_revision

    yield ab_revision
    for name in [name for name in sys.modules if name.split(".")[0] == ab_revision.REVISION_PACKAGE]:
        del sys.modules[name]


def test_the_copy_renames_its_imports_and_its_custom_op(ab_revision):
    code = ('import ydrop\nfrom ydrop.data import load\n    from ydrop import models\n'
            '@torch.library.custom_op("ydrop::mask")\nx = torch.ops.ydrop.mask(a)\nimport ydropx\n')
    assert ab_revision._renamed(code) == (
        'import ydrop_rev\nfrom ydrop_rev.data import load\n    from ydrop_rev import models\n'
        '@torch.library.custom_op("ydrop_rev::mask")\nx = torch.ops.ydrop_rev.mask(a)\nimport ydropx\n')


def test_an_exported_revision_trains_next_to_todays_code(ab_revision, tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    import ydrop

    old = ab_revision.export_revision("HEAD", tmp_path)
    assert old.__name__ == "ydrop_rev" and Path(old.__file__).is_relative_to(tmp_path)
    for package in (old, ydrop, None):
        step = ab_revision.guided_step(package, small=True)
        step(), step()
    assert old.YDrop is not ydrop.YDrop


def test_an_unknown_revision_names_it(ab_revision, tmp_path):
    with pytest.raises(SystemExit, match="revision 'no-such-revision'"):
        ab_revision.export_revision("no-such-revision", tmp_path)
