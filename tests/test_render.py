import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from unitb.write import render
from unitb.write.render import RenderError


@pytest.mark.parametrize("shape, layout", [
    ((3, 20, 30), "auto"), ((20, 30, 3), "auto"), ((1, 20, 30), "auto"), ((20, 30, 1), "auto"),
    ((4, 20, 30), "auto"), ((20, 30, 4), "auto"), ((20, 30), "auto"), ((3, 3, 3), "CHW"),
])
def test_every_image_form_renders_to_rgb(shape, layout):
    for dtype, high in ((np.uint8, 255), (np.float32, 1.0), (np.float64, 255.0)):
        image = (np.random.default_rng(0).random(shape) * high).astype(dtype)
        out = render.render_batch(image, layout=layout)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[-1] == 3


def test_float_ranges_are_detected():
    assert render.to_uint8(np.array([0.0, 0.5, 1.0], np.float32)).tolist() == [0, 128, 255]
    assert render.to_uint8(np.array([0.0, 128.0, 300.0], np.float32)).tolist() == [0, 128, 255]
    assert render.to_uint8(np.array([np.nan, np.inf], np.float32)).tolist() == [0, 0]


@pytest.mark.parametrize("mean, std", [
    ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),
])
def test_denormalize_auto_detects_0_1_and_0_255(mean, std):
    rgb = np.random.default_rng(1).random((2, 3, 8, 8)).astype(np.float32)  # 0-1 truth
    m, s = render.normalise_mean_std(mean, std)
    normalised = (rgb - m.reshape(1, 3, 1, 1)) / s.reshape(1, 3, 1, 1)
    back = render.denormalize(normalised, mean, std, channel_axis=1)
    np.testing.assert_allclose(back, rgb, atol=1e-5)
    flipped = render.denormalize(normalised[:, ::-1], mean[::-1], std[::-1], channel_axis=1, bgr=True)
    np.testing.assert_allclose(flipped, rgb, atol=1e-5)


def test_keypoint_overlay_colours_gt_green_pred_red_and_respects_kpt_thr():
    image = np.zeros((1, 40, 40, 3), np.uint8)
    out = render.render_batch(image, layout="HWC", gt_keypoints=[np.array([[10.0, 10.0]])],
                              pred_keypoints=[np.array([[30.0, 30.0], [30.0, 10.0]])],
                              pred_scores=[np.array([0.9, 0.1])], kpt_thr=0.3, min_side=0)
    pad = 2  # make_grid pads by 2 pixels
    assert tuple(out[10 + pad, 10 + pad]) == render.GT_COLOR
    assert tuple(out[30 + pad, 30 + pad]) == render.PRED_COLOR
    assert tuple(out[10 + pad, 30 + pad]) == (0, 0, 0)  # score 0.1 < kpt_thr: not drawn


def test_small_images_are_enlarged_by_a_whole_factor_with_their_overlays():
    image = np.zeros((1, 40, 40, 3), np.uint8)
    image[0, 10, 25] = 255  # one white pixel: it becomes a 4 x 4 block
    out = render.render_batch(image, layout="HWC", gt_keypoints=[np.array([[10.0, 30.0]])],
                              gt_boxes=[np.array([[0.0, 0.0, 20.0, 20.0]])])
    pad = 2
    assert out.shape == (160 + 2 * pad, 160 + 2 * pad, 3)  # ceil(128 / 40) = 4
    assert (out[pad + 40:pad + 44, pad + 100:pad + 104] == 255).all()
    centre = round((10 + 0.5) * 4 - 0.5)  # pixel centres stay pixel centres
    assert tuple(out[pad + round((30 + 0.5) * 4 - 0.5), pad + centre]) == render.GT_COLOR
    assert tuple(out[pad, pad + 40]) == render.GT_COLOR and tuple(out[pad + 80, pad + 40]) == render.GT_COLOR
    big = render.render_batch(np.zeros((1, 128, 200, 3), np.uint8), layout="HWC")
    assert big.shape == (128 + 2 * pad, 200 + 2 * pad, 3)  # already large enough: native size


def test_skeleton_and_boxes_are_drawn():
    image = np.zeros((40, 40, 3), np.uint8)
    out = render.draw_keypoints(image, gt=np.array([[5.0, 20.0], [35.0, 20.0]]), skeleton=[(0, 1)])
    assert tuple(out[20, 20]) == render.GT_COLOR  # on the line between the two points
    boxed = render.draw_boxes(image, np.array([[5, 5, 30, 30]]), render.PRED_COLOR)
    assert tuple(boxed[5, 15]) == render.PRED_COLOR and tuple(boxed[15, 15]) == (0, 0, 0)


def test_grid_tiles_images():
    grid = render.make_grid([np.full((10, 10, 3), 255, np.uint8)] * 4)
    assert grid.shape == (2 * 12 + 2, 2 * 12 + 2, 3)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 2, 2, 2, 2)), "rank"),
    (np.zeros((10, 10, 2)), "channels"),
    (np.zeros((10, 10, 5)), "channels"),
    (np.zeros((0, 3, 10, 10)), "empty"),
    (np.array([["a"]]), "dtype"),
])
def test_bad_images_raise_a_clear_render_error(bad, message):
    with pytest.raises(RenderError, match=message):
        render.render_batch(bad)


def test_bad_keypoints_raise_a_clear_render_error():
    with pytest.raises(RenderError, match="keypoints"):
        render.render_batch(np.zeros((1, 3, 8, 8)), gt_keypoints=[np.zeros((3,))])
    with pytest.raises(RenderError, match="scores"):
        render.render_batch(np.zeros((1, 3, 8, 8)), pred_keypoints=[np.zeros((3, 2))], pred_scores=[np.zeros(2)])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int16]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6)))
def test_fuzz_render_raises_only_render_error(array):
    try:
        out = render.render_batch(array)
    except RenderError:
        return
    assert out.dtype == np.uint8 and out.shape[-1] == 3


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_fuzz_sanitize_always_gives_a_safe_tag(text):
    from unitb import schema

    tag = schema.sanitize(text)
    assert tag and all(c.isalnum() and c.isascii() or c in "_.-/" for c in tag)
