"""``import ydrop`` stays light: torch's compiler loads with the first guided layer."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_ydrop_does_not_load_the_compiler():
    assert "torch._dynamo" not in _modules_after("import ydrop")


def test_the_first_guided_layer_defines_the_mask_op():
    _modules_after("import ydrop, torch; ydrop.YDrop(); assert torch.ops.ydrop.mask.default")  # raises if not
