"""Keypoints matched by OKS: the similarity equals COCO's own evaluation (xtcocotools, which
mmpose uses), and the mmengine hook writes the keypoint PR curve at every validation."""
import numpy as np
import pytest

from unitb.read import diff
from unitb.write import oks_matching
from unitb import reader


def test_oks_equals_cocoeval():
    cocoeval = pytest.importorskip("xtcocotools.cocoeval")
    from xtcocotools.coco import COCO

    rng = np.random.default_rng(0)
    gt = rng.uniform(50, 150, size=(17, 2))
    visible = rng.integers(0, 3, size=17)
    visible[0] = 2
    box = [40.0, 45.0, 120.0, 110.0]  # x, y, w, h
    area = box[2] * box[3]
    images = [{"id": 1, "width": 300, "height": 300}]
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": area, "bbox": box, "num_keypoints": 17,
           "keypoints": np.column_stack([gt, visible]).reshape(-1).tolist()}
    coco = COCO()
    coco.dataset = {"images": images, "annotations": [ann], "categories": [{"id": 1, "name": "person"}]}
    coco.createIndex()
    for shift in (0.5, 3.0, 12.0):
        pred = gt + rng.normal(0, shift, size=gt.shape)
        detections = coco.loadRes([{"image_id": 1, "category_id": 1, "score": 0.9,
                                    "keypoints": np.column_stack([pred, np.ones(17)]).reshape(-1).tolist()}])
        evaluation = cocoeval.COCOeval(coco, detections, "keypoints", use_area=True)
        evaluation.params.imgIds = [1]
        evaluation._prepare()
        expected = evaluation.computeOks(1, 1)[0][0]
        assert oks_matching.oks(pred, gt, visible, area) == pytest.approx(expected, rel=1e-9)


def test_the_hook_writes_the_keypoint_pr_curve_at_each_validation(tmp_path):
    import mmengine_pose

    hook = dict(grad_norm_interval=4, scalar_interval=2, val_image_interval=1)
    mmengine_pose.build_runner(str(tmp_path), steps=16, hook=hook).train()
    run_dir = mmengine_pose.vis_dir(str(tmp_path))
    all_rows = reader.read_run(run_dir)
    rows = [r for r in all_rows if r.tag == "val/pr/keypoints_oks50/pr_curves"]
    strict = [r for r in all_rows if r.tag == "val/pr/keypoints_oks75/pr_curves"]
    val_steps = sorted({s for s, _ in reader.scalars(run_dir)["val/PCK"]}) if "val/PCK" in reader.scalars(run_dir) \
        else [8, 16]
    assert [r.step for r in rows] == val_steps and rows[0].kind == "pr_curves"
    for row in rows:
        curve = np.asarray(row.value)  # TP, FP, TN, FN, precision, recall at 201 thresholds
        assert curve.shape == (6, 201)
        assert curve[0, 0] + curve[1, 0] == 16  # every validation sample's prediction, at threshold 0
        assert curve[0, 0] + curve[3, 0] == curve[0, -1] + curve[3, -1]  # positives do not depend on it
    for loose, tight in zip(rows, strict):  # fewer predictions match at OKS 0.75 than at 0.5
        assert np.asarray(tight.value)[0, 0] <= np.asarray(loose.value)[0, 0]
    assert [r.step for r in strict] == val_steps
    layout = diff.layout_of(run_dir)
    assert layout.families["val/pr/*"] == {"val/pr/keypoints_oks50/pr_curves", "val/pr/keypoints_oks75/pr_curves"}


def test_the_pr_curve_can_be_switched_off(tmp_path):
    import mmengine_pose

    mmengine_pose.build_runner(str(tmp_path), steps=8, hook=dict(log_pr_curves=False)).train()
    assert not [r for r in reader.tag_summary(mmengine_pose.vis_dir(str(tmp_path))) if "/pr/" in r["tag"]]


def test_tfcallback_writes_the_keypoint_pr_curve_from_its_validation_predictions(tmp_path):
    """The Keras side draws the same curves from ``val_gt_keypoints`` and ``predict_keypoints``:
    here two of four predictions sit on their poses and two far off, so at OKS 0.5 two are true."""
    import keras

    import unitb

    rng = np.random.default_rng(0)
    images = rng.random((4, 16, 16, 3)).astype("float32")
    gt = [rng.uniform(10, 50, size=(5, 2)) for _ in range(4)]
    off = [0.0, 0.0, 40.0, 40.0]

    def predict_keypoints(model, batch):
        return np.stack([gt[i] + off[i] for i in range(len(batch))]), np.full((len(batch), 5), 0.9)

    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = unitb.TFCallback(str(tmp_path / "run"), val_image_data=images, val_gt_keypoints=gt,
                                predict_keypoints=predict_keypoints, log_speed=False)
    model.fit(images, images.mean(axis=(1, 2, 3)), batch_size=2, epochs=2, verbose=0, callbacks=[callback],
              validation_data=(images, images.mean(axis=(1, 2, 3))))
    callback.close()
    rows = [r for r in reader.read_run(callback.run_dir) if r.tag == "val/pr/keypoints_oks50/pr_curves"]
    assert [r.step for r in rows] == [2, 4]  # after each epoch's validation, at the iterations completed
    curve = np.asarray(rows[-1].value)
    assert (curve[0, 0], curve[1, 0]) == (2, 2)  # true and false positives at threshold 0
