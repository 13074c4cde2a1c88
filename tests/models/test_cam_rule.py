"""How the CAM baseline picks a tag per pixel (models.label_transfer, ``cam_rule``)."""

from __future__ import annotations

import torch

from models.label_transfer import PairMaps, label_pair_maps, standardise

SIZE = 8
OBJECT = (slice(0, 3), slice(0, 3))  # the cow: a 3x3 block in a field of grass
GRASS, COW = 1, 2


def _maps(raw: torch.Tensor) -> PairMaps:
    """PairMaps of one image from raw CAM logits (T, S, S), tags 1..T, no decoder."""
    attention = torch.relu(raw)
    attention = attention / attention.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]
    inside = torch.ones_like(raw, dtype=torch.bool)
    return PairMaps(
        list(range(1, len(raw) + 1)), attention, torch.zeros_like(raw), standardise(raw, inside)
    )


def _context_learned_cow() -> PairMaps:
    """Grass fires everywhere, a little less on the cow; the cow's map peaks on two grass
    pixels (its context) and is only moderately above its floor on the cow itself."""
    grass = torch.full((SIZE, SIZE), 3.0)
    grass[OBJECT] = 2.5
    cow = torch.full((SIZE, SIZE), 1.0)
    cow[OBJECT] = 1.5
    cow[7, 6:8] = 2.5
    return _maps(torch.stack([grass, cow]))


def _labels(maps: PairMaps, rule: str, *, background: bool = False, threshold: float = 0.3):
    labels = label_pair_maps(
        maps,
        has_background=background,
        cam_threshold=threshold,
        bg_bias=1.0,
        margin=None,
        cam_rule=rule,
    )
    assert labels is not None
    return labels[0]


def test_zscore_gives_the_object_to_a_tag_learned_from_context() -> None:
    maps = _context_learned_cow()
    peak, zscore = _labels(maps, "peak"), _labels(maps, "zscore")
    assert (peak[OBJECT] == GRASS).all()  # a_grass 0.83 > a_cow 0.6 on the cow
    assert (zscore[OBJECT] == COW).all()  # the cow's map is above its mean there, grass below
    rest = torch.ones(SIZE, SIZE, dtype=torch.bool)
    rest[OBJECT] = False
    rest[7, 6:8] = False
    assert (zscore[rest] == GRASS).all()


def test_background_decision_is_the_attention_threshold_under_either_rule() -> None:
    """The rule only chooses among tags: a pixel where every a_k stays at or below
    cam_threshold is background, as before, so the fitted thresholds keep their meaning."""
    torch.manual_seed(0)
    raw = torch.randn(3, SIZE, SIZE)
    maps = _maps(raw)
    for rule in ("peak", "zscore"):
        labels = _labels(maps, rule, background=True, threshold=0.4)
        background = maps.cam.amax(0) <= 0.4
        assert (labels[background] == 0).all()
        assert (labels[~background] > 0).all()


def test_peak_rule_is_the_argmax_over_threshold_and_attention() -> None:
    """``peak`` keeps the earlier labelling exactly: argmax over [threshold, a_1..a_T]."""
    torch.manual_seed(1)
    maps = _maps(torch.randn(4, SIZE, SIZE))
    reference = torch.cat([torch.full((1, SIZE, SIZE), 0.3), maps.cam]).argmax(0)
    assert torch.equal(_labels(maps, "peak", background=True), reference)
    assert torch.equal(_labels(maps, "peak"), maps.cam.argmax(0) + 1)


def test_standardise_ignores_padding() -> None:
    maps = torch.zeros(1, SIZE, SIZE)
    maps[0, :4] = torch.arange(4 * SIZE, dtype=torch.float32).view(4, SIZE)
    maps[0, 4:] = 1000.0  # padding: must not move the mean or the spread
    inside = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    inside[0, :4] = True
    z = standardise(maps, inside)[0, :4]
    assert abs(float(z.mean())) < 1e-5
    assert abs(float(z.std(unbiased=False)) - 1.0) < 1e-4
