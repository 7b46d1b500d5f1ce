"""Predicted heatmaps laid over the input images: hot where the heatmap peaks, the picture
unchanged where it is cold; from TFCallback (predict_heatmaps) and TFLogger.log_images."""
import numpy as np

import unitb
from unitb import reader
from unitb.write import render


def _peak_map(size=8, at=(2, 6), keypoints=3):
    heat = np.zeros((size, size, keypoints), np.float32)
    heat[at[0], at[1], 1] = 1.0  # one keypoint's peak; the others are flat
    return heat


def test_the_overlay_is_hot_at_the_peak_and_leaves_cold_areas_alone():
    frame = np.full((64, 64, 3), 40, np.uint8)
    out = render.blend_heatmap(frame, np.moveaxis(_peak_map(), -1, 0))
    # the peak's cell (2, 6) of 8 x 8 covers rows 16..23, columns 48..55 of the 64 x 64 frame
    assert out[16:24, 48:56, 0].max() > 150 and out[19, 51, 0] > out[19, 51, 2]
    assert (out[50:, :20] == 40).all()  # far from the peak: the picture as it was


def test_tfcallback_and_tflogger_write_heatmaps_beside_the_images(tmp_path):
    import keras

    x = np.zeros((8, 32, 32, 3), np.float32)
    y = np.zeros((8, 1), np.float32)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = unitb.TFCallback(str(tmp_path / "keras"), val_image_data=x[:2], train_image_interval=1,
                                predict_heatmaps=lambda m, images: np.stack([_peak_map()] * len(images)))
    model.fit(x, y, batch_size=4, epochs=1, validation_data=(x, y), callbacks=[callback], verbose=0)
    callback.close()
    rows = reader.read_run(callback.run_dir)
    assert [r.step for r in rows if r.tag == "val/heatmap"] == [2]
    picture = reader.decode_png([r for r in rows if r.tag == "val/heatmap"][0].value)
    hot = np.argwhere(picture[..., 0] > 150)
    # two 128 x 128 frames side by side (32-pixel images are enlarged 4x): each hot spot sits at
    # the peak's place, a quarter down and three quarters across its frame
    assert len(hot) and (hot[:, 0] < picture.shape[0] * 0.45).all()

    logger = unitb.TFLogger(str(tmp_path / "loop"))
    logger.log_images(1, x[:2], split="val", heatmaps=np.stack([_peak_map()] * 2))
    logger.log_images(1, x[:2], split="val", heatmaps=np.zeros((3, 4)))  # a wrong shape: one warning, skipped
    logger.close()
    tags = {row["tag"]: row["count"] for row in reader.tag_summary(logger.run_dir)}
    assert tags["val/heatmap"] == 1 and tags["val/image"] == 2
