"""tools/generate_model_zoo.py: MODEL_ZOO.md is exactly what it generates from the zoo table, and
the generated page lists every model completely."""
import os
import re

from helpers import REPO, load_script
from mask2former.model_zoo import backbone_weights, list_models
from mask2former.model_zoo.table import load_table

gen = load_script("tools/generate_model_zoo.py", "generate_model_zoo")


def test_model_zoo_md_is_generated_from_the_table():
    with open(os.path.join(REPO, "MODEL_ZOO.md"), encoding="utf-8") as f:
        current = f.read()
    assert current == gen.render(load_table()), \
        "MODEL_ZOO.md is out of date: run python tools/generate_model_zoo.py"


def test_every_model_row_is_complete():
    text = gen.render(load_table())
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([a-z0-9_/]+)`", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip("|").split("|")]
    models = list_models("image") + list_models("video")
    assert sorted(rows) == sorted(m.name for m in models)
    for m in models:
        cells = rows[m.name]
        assert "—" not in cells and all(cells), cells
        assert f"[{m.config}]({m.config})" in cells and m.model_id in cells
        assert cells[-1] == f"[model_final_{m.md5_prefix}.pkl]({m.url}) (`{m.md5_prefix}`)"
        for value in m.metrics.values():
            assert value in cells
    for b in backbone_weights():
        assert f"`{b.weights or b.file}`" in text and (not b.convert or b.convert in text)
    # the page sends users to files of the repository, not to the development workspace
    assert "MaskFormer v1" in text and "shared/" not in text


def test_check_mode(tmp_path, capsys):
    out = tmp_path / "MODEL_ZOO.md"
    assert gen.main(["--output", str(out)]) == 0
    assert gen.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text().replace("51.9", "99.9"))
    assert gen.main(["--check", "--output", str(out)]) == 1
    assert "-| `coco/panoptic/r50`" in capsys.readouterr().out
