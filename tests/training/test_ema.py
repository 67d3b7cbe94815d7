"""``audiograd.training.EMA`` against ema_pytorch 0.2.3 (the EMA stable-audio-tools trains with):
the same weights after every update of a schedule that copies, warms up and averages."""
import numpy as np
import pytest

from audiograd import nn
from audiograd.training.ema import EMA

torch = pytest.importorskip("torch")
ema_pytorch = pytest.importorskip("ema_pytorch")


@pytest.mark.parametrize("settings", [dict(beta=0.9999, power=3 / 4, update_every=1, update_after_step=1),
                                      dict(beta=0.9, power=2 / 3, update_every=3, update_after_step=4)],
                         ids=["stable-audio-tools", "sparse"])
def test_shadows_match_ema_pytorch(settings):
    rng = np.random.default_rng(0)
    ref_model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
    ref_ema = ema_pytorch.EMA(ref_model, **settings)
    ours_model = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3))
    ours_model.load_state_dict({k: v.detach().numpy() for k, v in ref_model.state_dict().items()})
    ours_ema = EMA(ours_model, **settings)
    for _ in range(30):
        new = {k: v.detach().numpy() + rng.normal(0, 0.1, v.shape).astype(np.float32)
               for k, v in ref_model.state_dict().items()}
        ref_model.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()})
        ours_model.load_state_dict(new)
        ref_ema.update()
        ours_ema.update()
        want = {k: v.detach().numpy() for k, v in ref_ema.ema_model.state_dict().items()}
        for k, v in ours_ema.shadow.items():
            np.testing.assert_allclose(v.numpy(), want[k], rtol=0, atol=2e-7, err_msg=f"{k} after {ours_ema.step}")
    assert ours_ema.current_decay() > 0


def test_state_round_trip_and_bad_state():
    model = nn.Linear(3, 2)
    ema = EMA(model, update_after_step=0, update_every=1)
    for _ in range(3):
        model.weight.assign(model.weight + 1.0)
        ema.update()
    other = EMA(nn.Linear(3, 2), update_after_step=0, update_every=1)
    other.load_state_dict(ema.state_dict())
    assert other.step == ema.step
    np.testing.assert_array_equal(other.shadow["weight"].numpy(), ema.shadow["weight"].numpy())
    with pytest.raises(KeyError, match="lacks"):
        other.load_state_dict({"shadow": {}, "step": 1, "initted": True})
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict({"shadow": {"weight": np.zeros((2, 2)), "bias": np.zeros(2)}, "step": 1, "initted": True})
