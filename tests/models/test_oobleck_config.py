"""Model configs are user files too: a wrong JSON type anywhere is one ValueError naming the part,
from the Python API and as one line from the command line."""
import json

import numpy as np
import pytest
import soundfile as sf

from audiograd.cli.main import main
from audiograd.models.oobleck import OobleckVAE, pretransform_config
from oobleck_configs import TINY

MALFORMED = {
    "encoder not an object": ({"encoder": 5, "decoder": {}}, "encoder must be a JSON object"),
    "pretransform not an object": ({"model": {"pretransform": 3}}, "model.pretransform must be"),
    "pretransform config a list": ({"model": {"pretransform": {"config": [1]}}}, "model.pretransform.config"),
    "bare pretransform config missing": ({"pretransform": {}}, "pretransform.config must be"),
    "decoder config a string": ({"encoder": {}, "decoder": {"config": "x"}}, "decoder.config must be"),
    "bottleneck a list": ({**TINY, "bottleneck": [1]}, "bottleneck must be"),
    "strides a string": ({**TINY, "encoder": {**TINY["encoder"], "config": {**TINY["encoder"]["config"],
                                                                             "strides": "ab"}}}, "strides"),
    "sample rate a string": ({**TINY, "sample_rate": "x"}, "sample_rate must be a positive integer"),
    "latent dim zero": ({**TINY, "latent_dim": 0}, "latent_dim must be a positive integer"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_config_is_one_value_error(name):
    config, message = MALFORMED[name]
    with pytest.raises(ValueError, match=message):
        OobleckVAE(config)


def test_config_file_that_is_not_json_or_not_an_object_names_the_file(tmp_path):
    (tmp_path / "broken.json").write_text('{"sample_rate": 4')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xff"}')
    for name, message in [("broken.json", "not a JSON config"), ("list.json", "a model config is a JSON object, this file holds a list"),
                          ("latin1.json", "not a JSON config")]:
        with pytest.raises(ValueError, match=f"{name}: {message}"):
            pretransform_config(tmp_path / name)


@pytest.mark.parametrize("name", ["encoder not an object", "strides a string", "sample rate a string"])
def test_malformed_config_is_one_cli_line(tmp_path, capsys, name):
    config, message = MALFORMED[name]
    (tmp_path / "c.json").write_text(json.dumps(config))
    sf.write(tmp_path / "in.wav", np.zeros((4096, 2), np.float32), 44100)
    rc = main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "z.npy"), "--random-weights",
               "--config", str(tmp_path / "c.json"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "z.npy").exists()
