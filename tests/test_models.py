"""Model shapes, shape errors, batch consistency and padding (lengths) handling."""

from __future__ import annotations

import pytest
import torch

from biosig.models import CRNN, BiLSTM, Ensemble, XVector, build_model, stats_pool
from biosig.train.config import CRNNConfig, LSTMConfig, TDNNConfig

SMALL = {
    "tdnn": lambda: XVector(n_features=20, n_classes=3, channels=[16, 16, 16, 16, 32],
                            embedding_dim=12),
    "crnn": lambda: CRNN(n_features=20, n_classes=3, channels=[8, 16], pool_time=[2, 2],
                         gru_hidden=8),
    "lstm": lambda: BiLSTM(n_features=20, n_classes=3, hidden=8, layers=2),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_forward_shape_and_batch_consistency(name):
    torch.manual_seed(0)
    model = SMALL[name]().eval()
    x = torch.randn(4, 20, 40)
    y = model(x)
    assert y.shape == (4, 3)
    one_by_one = torch.cat([model(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(one_by_one, y, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(SMALL))
def test_shape_errors_name_the_argument(name):
    model = SMALL[name]()
    with pytest.raises(ValueError, match=r"features has shape \(2, 21, 40\), expected "
                                         r"\(batch, 20, n_frames\)"):
        model(torch.randn(2, 21, 40))
    with pytest.raises(ValueError, match="features has shape"):
        model(torch.randn(20, 40))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 20, 40), torch.tensor([41, 3]))


@pytest.mark.parametrize("name", list(SMALL))
def test_trains_on_separable_toy_data(name):
    torch.manual_seed(0)
    model = SMALL[name]()
    x = torch.randn(24, 20, 16)
    y = torch.arange(24) % 3
    x[torch.arange(24), y * 5] += 3.0           # class c: energy in feature bin 5c
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() > 0.9


def test_stats_pool_known_answer_and_mask():
    x = torch.tensor([[[1.0, 3.0, 100.0]]])           # (1, 1, 3)
    out = stats_pool(x, mask=torch.tensor([[True, True, False]]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 1.0]]))


def test_xvector_embedding_ignores_padding():
    torch.manual_seed(0)
    model = SMALL["tdnn"]().eval()
    x = torch.randn(1, 20, 30)
    padded = torch.cat([x, torch.zeros(1, 20, 10)], dim=-1)
    e1 = model.embed(x)
    e2 = model.embed(padded, torch.tensor([30]))
    assert e1.shape == (1, 12)
    # the conv context at the boundary sees zeros, so frames near the edge differ slightly
    assert torch.nn.functional.cosine_similarity(e1, e2).item() > 0.98


def test_crnn_frame_level_output():
    model = SMALL["crnn"]().eval()
    out = model.frame_logits(torch.randn(2, 20, 40))
    assert out.shape == (2, 40 // model.time_factor, 3)
    with pytest.raises(ValueError, match="at least 4"):
        model(torch.randn(2, 20, 3))


def test_build_model_from_config():
    assert isinstance(build_model(CRNNConfig(name="crnn"), n_features=64, n_classes=4), CRNN)
    assert isinstance(build_model(TDNNConfig(name="tdnn"), n_features=40, n_classes=2), XVector)
    m = build_model(LSTMConfig(name="lstm", hidden=8), n_features=5, n_classes=2)
    assert m(torch.randn(3, 5, 7)).shape == (3, 2)


def test_ensemble_of_members_averages_probabilities():
    torch.manual_seed(0)
    ens = build_model(TDNNConfig(name="tdnn", channels=[16, 16, 16, 16, 32], embedding_dim=12,
                                 members=3), n_features=20, n_classes=3)
    assert isinstance(ens, Ensemble) and len(ens.models) == 3
    w = [m.output.weight if hasattr(m, "output") else next(m.parameters()) for m in ens.models]
    assert not torch.equal(w[0], w[1])                  # each member its own initialisation
    x = torch.randn(4, 20, 30)
    ens.train()
    assert ens(x).shape == (4, 3, 3)                    # training: every member's logits
    ens.eval()
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(x), -1) for m in ens.models]).mean(0)
        torch.testing.assert_close(torch.softmax(ens(x), -1), mean)
        emb = torch.stack([m.embed(x) for m in ens.models]).mean(0)
        torch.testing.assert_close(ens.embed(x), emb)
    for cfg in (LSTMConfig(name="lstm", members=2, hidden=8),
                CRNNConfig(name="crnn", members=2, channels=[4, 8], pool_time=[1, 1],
                           gru_hidden=6)):
        net = build_model(cfg, n_features=20, n_classes=2).eval()
        with torch.no_grad():                   # the head reads the embedding
            e = [m.embed(x) for m in net.models]
            assert e[0].shape == (4, 2 * (8 if cfg.name == "lstm" else 6))
            torch.testing.assert_close(net.models[0](x), net.models[0].head(e[0]))
            torch.testing.assert_close(net.embed(x), torch.stack(e).mean(0))
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_members_train_each_on_their_own_loss():
    from biosig.train.engine import compute_loss
    torch.manual_seed(0)
    ens = build_model(CRNNConfig(name="crnn", channels=[8, 16], pool_time=[2, 2],
                                 gru_hidden=8, dropout=0.0, members=2), n_features=20,
                      n_classes=3)

    class Identity(torch.nn.Module):           # cached features in, features out
        def normalize(self, x):
            return x
    cfg = type("C", (), {})()
    cfg.data = type("D", (), {"classes": ["a", "b", "c"]})()
    x, y = torch.randn(6, 20, 16), torch.arange(6) % 3
    ens.train()
    res = compute_loss(ens, Identity(), x, y, cfg=cfg, train=False)
    with torch.no_grad():
        per = [torch.nn.functional.cross_entropy(m(x), y) for m in ens.models]
    torch.testing.assert_close(res.loss.detach(), torch.stack(per).mean())
    assert res.logits.shape == (6, 3)
    res.loss.backward()                                # every member gets a gradient
    assert all(next(m.parameters()).grad is not None for m in ens.models)
