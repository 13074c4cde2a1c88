"""cam_prior: L-Net's standardised CAMs re-weight the segmenters' delivered predictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models import PipelineConfig, PipelineResult, run_pipeline
from models.cam_prior import applies, cam_zscores, prior_weights, with_prior
from models.cam_prior_fit import FIT_GRID
from models.context import PipelineContext
from models.inference import _prepare, predict
from models.metrics import evaluate
from models.networks import build_lnet
from models.pseudo import allowed_classes
from models.stages import teacher_with_prior
from models.transforms import multi_hot, valid_mask
from tests.models.test_partial_masks import CFG, STRONG, _transfer_data
from tests.synthetic import make_shapes_dataset


def test_with_prior_keeps_the_allowed_classes_and_follows_a_heavy_prior() -> None:
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 4, 5, 5), dim=1)
    prior = torch.randn(2, 4, 5, 5)
    allowed = torch.tensor([[True, True, False, True], [False, True, True, False]])
    light = with_prior(probs, prior, allowed, 0.0)
    assert torch.allclose(light.sum(1), torch.ones(2, 5, 5))
    assert (light[~allowed[:, :, None, None].expand_as(light)] == 0).all()
    masked = probs.masked_fill(~allowed[:, :, None, None], 0)
    assert torch.equal(light.argmax(1), masked.argmax(1))  # weight 0: the segmenters alone
    heavy = with_prior(probs, prior, allowed, 1000.0)
    assert torch.equal(
        heavy.argmax(1), prior.masked_fill(~allowed[:, :, None, None], -1e9).argmax(1)
    )


def test_prior_weights_scale_the_weak_categories_and_reach_the_argmax() -> None:
    weights = prior_weights(4, 2.0, [3, 4], 3.0)
    assert weights.tolist() == [2.0, 2.0, 2.0, 6.0, 6.0]
    assert applies(weights) and not applies(prior_weights(4, 0.0, [3], 3.0))
    # one pixel: the segmenters say class 1 (log-odds ln 3 over class 3), the CAM favours
    # class 3 by 0.5: a weight of 2 keeps class 1, the weak category's 6 turns it
    probs = torch.tensor([0.0, 0.75, 0.0, 0.25, 0.0]).view(1, 5, 1, 1)
    prior = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.0]).view(1, 5, 1, 1)
    allowed = torch.ones(1, 5, dtype=torch.bool)
    assert int(with_prior(probs, prior, allowed, 2.0).argmax(1)) == 1
    assert int(with_prior(probs, prior, allowed, weights).argmax(1)) == 3


def test_cam_zscores_are_standardised_inside_each_image_and_zero_for_background() -> None:
    cfg = dataclasses.replace(CFG, image_size=32)
    lnet = build_lnet(4, cfg, torch.device("cpu"))
    images = torch.randn(2, 3, 32, 32)
    valid = valid_mask([(32, 20), (24, 32)], 32)
    z = cam_zscores(lnet, images, valid)
    assert z.shape == (2, 5, 32, 32)
    assert (z[:, 0] == 0).all()
    for i in range(2):
        inside = z[i, 1:][:, valid[i]]
        assert torch.allclose(inside.mean(1), torch.zeros(4), atol=1e-4)
        assert torch.allclose(inside.std(1, unbiased=False), torch.ones(4), atol=1e-3)


TRANSFER_CFG = dataclasses.replace(
    CFG,
    partial_masks="candidates",
    rounds=0,
    epochs_supervised=6,
    epochs_pnet=4,
    cam_prior_fit="holdout",
    cam_prior_labels="teachers",
)


@pytest.fixture(scope="module")
def transfer_stages() -> tuple[PipelineResult, dict[str, dict]]:
    """A transfer run with the fitted prior on its teachers' and its delivered labels, and
    the states of its stages."""
    data, _ = _transfer_data()
    states: dict[str, dict] = {}
    result = run_pipeline(data, TRANSFER_CFG, save_stage=states.__setitem__)
    return result, states


@pytest.fixture(scope="module")
def transfer_result(transfer_stages: tuple[PipelineResult, dict[str, dict]]) -> PipelineResult:
    return transfer_stages[0]


@pytest.fixture(scope="module")
def transfer_run(transfer_result: PipelineResult) -> dict:
    return transfer_result.model_state


def _miou(model: dict, cfg: PipelineConfig, images: list, gts: list, tags: list) -> float:
    preds = [p.mask for p in predict(model, images, tags, cfg)]
    return float(evaluate(preds, gts, 5, STRONG, [3, 4])["miou"])


def test_the_held_out_masks_pick_a_weight_that_does_not_hurt(
    transfer_result: PipelineResult,
) -> None:
    """On these shapes the segmenters beat the CAM: on fresh images with every category a
    fixed weight of 3 costs 0.08 mIoU. The held-out masks paint only the strong half
    (transfer), so the fit sees those categories alone; it picked 1.0 (fresh images
    -0.016) before the teachers' labels took the prior too, 0.5 (-0.004) since: far less
    than a fixed weight.
    The saved config carries the fitted weight to later predictions."""
    fit = transfer_result.metrics["predict"]
    scores = fit["cam_prior_fit"]
    assert set(scores) == {str(w) for w in FIT_GRID}
    chosen = fit["cam_prior"]
    assert scores[str(chosen)] == max(scores.values())
    model = transfer_result.model_state
    assert model["config"]["cam_prior"] == chosen
    cfg = PipelineConfig.from_params(model["config"])
    images, gts, tags = make_shapes_dataset(40, 48, seed=21, max_objects=3)
    fitted = _miou(model, cfg, images, gts, tags)
    plain = _miou(model, dataclasses.replace(cfg, cam_prior=0.0), images, gts, tags)
    fixed = _miou(model, dataclasses.replace(cfg, cam_prior=3.0), images, gts, tags)
    print(f"\nfitted weight {chosen}: mIoU {fitted:.3f}, plain {plain:.3f}, weight 3 {fixed:.3f}")
    assert fitted >= plain - 0.03
    assert fitted >= fixed


def test_the_prior_reaches_the_delivered_masks(transfer_run: dict) -> None:
    """A prior of weight 0 leaves L-Net out; a heavy one makes the delivered masks the
    CAM's argmax over the image's tags (so L-Net is really loaded and applied)."""
    cfg = dataclasses.replace(PipelineConfig.from_params(transfer_run["config"]), cam_prior=0.0)
    images, _, tags = make_shapes_dataset(12, 48, seed=21, max_objects=3)
    plain = [p.mask for p in predict(transfer_run, images, tags, cfg)]
    without_lnet = {k: v for k, v in transfer_run.items() if k != "lnet"}
    off = [p.mask for p in predict(without_lnet, images, tags, cfg)]
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))
    heavy_cfg = dataclasses.replace(cfg, cam_prior=20.0)
    heavy = [p.mask for p in predict(transfer_run, images, tags, heavy_cfg)]
    lnet = build_lnet(4, cfg, torch.device("cpu"), transfer_run["lnet"])
    tensors, shapes, _ = _prepare(images, cfg)
    z = cam_zscores(lnet, tensors, valid_mask(shapes, cfg.image_size))
    allowed = allowed_classes(multi_hot(tags, 4), True).bool()
    z_argmax = z.masked_fill(~allowed[:, :, None, None], -1e9).argmax(1)
    agree = [
        float((heavy[i] == z_argmax[i, : shapes[i][0], : shapes[i][1]].numpy()).mean())
        for i in range(len(images))
    ]
    changed = np.mean([float((a != b).mean()) for a, b in zip(plain, heavy, strict=True)])
    print(
        f"\nheavy prior: agrees with the CAM argmax on {np.mean(agree):.3f}, changed {changed:.3f}"
    )
    assert np.mean(agree) >= 0.9
    assert changed > 0.01


def test_the_teachers_labels_take_the_weight_fitted_for_their_nets(
    transfer_result: PipelineResult,
) -> None:
    """cam_prior_labels=teachers: the supervised nets' labels that teach P-Net are predicted
    again with the weight their own held-out fit chose, and score what the fit said."""
    report = transfer_result.metrics["supervised_prior"]
    scores = report["cam_prior_fit"]
    assert set(scores) == {str(w) for w in FIT_GRID}
    chosen = report["cam_prior"]
    assert scores[str(chosen)] == max(scores.values())
    supervised = transfer_result.metrics["supervised"]["miou_gt"]
    print(f"\nsupervised labels: held-out {supervised:.3f}, with the prior at {chosen}: {scores}")
    assert scores["0.0"] == pytest.approx(supervised, abs=0.01)
    if chosen > 0:
        assert report["miou_gt"] == pytest.approx(scores[str(chosen)], abs=0.01)
        assert report["miou_gt"] > supervised


def test_a_teachers_prior_relabels_its_targets_and_its_filtered_labels(
    transfer_stages: tuple[PipelineResult, dict[str, dict]],
) -> None:
    """A heavy fixed weight makes the supervised stage's labels of the targets the CAM's
    argmax over each image's tags, and the filtered labels P-Net trains on follow them."""
    _, states = transfer_stages
    data, _ = _transfer_data()
    cfg = dataclasses.replace(TRANSFER_CFG, cam_prior=20.0, cam_prior_fit="off")
    ctx = PipelineContext.build(data, cfg, torch.device("cpu"))
    lnet = build_lnet(ctx.num_classes, cfg, ctx.device, states["lnet"]["lnet"])
    teacher = states["supervised"]
    relabelled, metrics = teacher_with_prior(ctx, "supervised", teacher, lnet)
    assert metrics["supervised_prior"]["cam_prior"] == 20.0
    images = ctx.images[ctx.targets]
    valid = ctx.valid[ctx.targets]
    z = cam_zscores(lnet, images, valid)
    allowed = allowed_classes(ctx.tags[ctx.targets], ctx.has_background).bool()
    z_argmax = z.masked_fill(~allowed[:, :, None, None], -1e9).argmax(1)
    agree = float((relabelled["labels"][valid] == z_argmax[valid]).float().mean())
    before = float((teacher["labels"][valid] == z_argmax[valid]).float().mean())
    kept = relabelled["pseudo"] != 255
    follows = float((relabelled["pseudo"][kept] == relabelled["labels"][kept]).float().mean())
    print(f"\nagreement with the CAM argmax: {before:.3f} before, {agree:.3f} with the prior")
    assert agree >= 0.9
    assert agree > before + 0.05
    assert follows == 1.0
    assert not torch.equal(relabelled["pseudo"], teacher["pseudo"])


def test_saved_weights_carry_the_weak_categories_to_later_predictions(
    transfer_run: dict,
) -> None:
    """cam_prior_weak scales the weak categories' prior in predictions from saved weights
    (the model state lists them); weights saved without the list get one weight for all."""
    assert transfer_run["weak_classes"] == [3, 4]
    cfg = PipelineConfig.from_params(transfer_run["config"])
    cfg = dataclasses.replace(cfg, cam_prior=2.0, cam_prior_weak=10.0)
    images, _, tags = make_shapes_dataset(12, 48, seed=21, max_objects=3)
    scaled = [p.mask for p in predict(transfer_run, images, tags, cfg)]
    unlisted = {k: v for k, v in transfer_run.items() if k != "weak_classes"}
    flat = [p.mask for p in predict(unlisted, images, tags, cfg)]
    weak_share = [float(np.isin(m, [3, 4]).mean()) for m in (*scaled, *flat)]
    scaled_share, flat_share = np.mean(weak_share[:12]), np.mean(weak_share[12:])
    print(f"\nweak categories' share of pixels: {flat_share:.3f} flat, {scaled_share:.3f} scaled")
    assert scaled_share > flat_share + 0.02
