"""What a labeling run learns from: human masks, accepted pseudo-masks, never rejected ones."""

import numpy as np

from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload
from tests.fixtures.pseudo import finished_pipeline_job
from worker.context import WorkerContext
from worker.dataset import load_project


def test_review_decisions_shape_the_next_run(client, admin, settings):
    pid = make_project(client, admin)["id"]
    human = stripes_mask(32, 24, (0, 1))
    ids = [
        upload(
            client,
            admin,
            pid,
            image_bytes(seed=s),
            tags="cat",
            mask=mask_bytes(human) if s == 0 else None,
        ).json()["id"]
        for s in range(4)
    ]
    accepted = stripes_mask(32, 24, (1, 2))
    finished_pipeline_job(settings, pid, ids[1:], [accepted, accepted, accepted], [0.5] * 3)
    queue = client.get(f"/v1/projects/{pid}/review-queue", headers=admin).json()["items"]
    by_image = {it["image"]["id"]: it["mask_id"] for it in queue}
    client.post(f"/v1/masks/{by_image[ids[1]]}/review", json={"decision": "accept"}, headers=admin)
    client.post(f"/v1/masks/{by_image[ids[2]]}/review", json={"decision": "reject"}, headers=admin)

    ctx = WorkerContext.from_settings(settings)
    try:
        project = load_project(ctx, pid)
    finally:
        ctx.dispose()
    data = project.data
    assert project.image_ids == ids
    assert np.array_equal(data.masks[0], human)  # human
    assert np.array_equal(data.masks[1], accepted)  # accepted pseudo counts as human
    assert data.masks[2] is None and data.masks[3] is None
    assert data.no_pseudo == frozenset({2})  # rejected: labelled again, never trained on
    assert project.mask_sources == {ids[0]: "human", ids[1]: "accepted"}
