import pytest

from unitb.life.options import LogOptions
from unitb.life.policy import DenseThenSparse, EveryNEpochs, EveryNSteps, check_interval


def test_every_n_steps_logs_first_step_and_multiples():
    policy = EveryNSteps(100)
    assert [s for s in range(0, 401) if policy.should_log(s)] == [1, 100, 200, 300, 400]
    assert [s for s in range(0, 11) if EveryNSteps(5, first=False).should_log(s)] == [5, 10]
    assert policy.next_step(1) == 100


def test_every_n_epochs():
    assert [e for e in range(0, 10) if EveryNEpochs(3).should_log(e)] == [3, 6, 9]


def test_dense_then_sparse_is_dense_early_and_capped():
    policy = DenseThenSparse(interval=100, density=8)
    logged = [s for s in range(1, 5001) if policy.should_log(s)]
    assert logged[:15] == list(range(1, 16))  # every step below 16
    assert [s for s in logged if 16 <= s < 32] == list(range(16, 32, 2))
    assert [s for s in logged if 32 <= s < 64] == list(range(32, 64, 4))
    late = [s for s in logged if s >= 2000]
    assert all(b - a == 100 for a, b in zip(late, late[1:]))  # capped at the interval
    assert policy.interval_at(10 ** 6) == 100


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", None, True])
def test_bad_intervals_raise_value_error_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="grad_norm_interval"):
        check_interval("grad_norm_interval", bad)
    with pytest.raises(ValueError, match="grad_norm_interval"):
        LogOptions(grad_norm_interval=bad)


def test_options_validate_everything_at_construction():
    with pytest.raises(ValueError, match="kpt_thr"):
        LogOptions(kpt_thr=1.5)
    with pytest.raises(ValueError, match="max_train_images"):
        LogOptions(max_train_images=0)
    with pytest.raises(ValueError, match="log_lr"):
        LogOptions(log_lr="yes")
    with pytest.raises(ValueError, match="max_log_mb"):
        LogOptions(max_log_mb=-3)
    with pytest.raises(ValueError, match="did you mean 'grad_norm_interval'"):
        LogOptions.from_kwargs("X", {"grad_norm_intervall": 5})
    defaults = LogOptions()
    assert (defaults.grad_norm_interval, defaults.weight_hist_interval, defaults.train_image_interval,
            defaults.val_image_interval, defaults.max_layers_to_log, defaults.max_train_images,
            defaults.kpt_thr) == (100, 1, 500, 10, 20, 4, 0.3)
    assert defaults.scalar_policy.should_log(100) and not defaults.scalar_policy.should_log(50)
    assert LogOptions(adaptive_interval=True).scalar_policy.should_log(3)
