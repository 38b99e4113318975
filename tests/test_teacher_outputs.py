"""The sources of a student's teacher logits: which loss each can serve, and cached teacher outputs
(K fixed views per sample, the teacher's logits on exactly those views, and a student trained with
them that sees, in epoch e, view e mod K with its cached logits)."""
import pytest
import tiny
import torch

from pipeline.data.splits import Augment, Views, apply_views, augment_batch, random_views
from pipeline.errors import UserError
from pipeline.losses import build_loss
from pipeline.models import build_model
from pipeline.seeding import seeded_init
from pipeline.teacher_outputs import (
    CachedViews,
    NoTeacher,
    OnlineTeacher,
    compute_cached_views,
    load_cached_views,
    save_cached_views,
)
from pipeline.train import TrainConfig, fit

CPU = torch.device("cpu")


def normalised(x):
    return x.float().div(255).sub(tiny.MEAN[0]).div(tiny.STD[0])


def test_views_crop_the_padded_image_and_flip():
    x = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    augment = Augment(crop_padding=1, flip=True)
    centre = apply_views(x, augment, Views(torch.tensor([[1, 1]]), torch.tensor([False])))
    assert torch.equal(centre, x)
    flipped = apply_views(x, augment, Views(torch.tensor([[1, 1]]), torch.tensor([True])))
    assert flipped[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    top_left = apply_views(x, augment, Views(torch.tensor([[0, 0]]), torch.tensor([False])))
    assert top_left[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [0, 4, 5]]  # one row and column of padding
    # random augmentation is a random view: the same stream gives the same images
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    batch = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(augment_batch(batch, augment, g1), apply_views(batch, augment, random_views(5, augment, g2)))


@pytest.fixture(scope="module")
def teacher():
    with seeded_init(0, "init"):
        return build_model("cnn", 3, 1, width=2).eval()


def test_cached_logits_are_the_teachers_on_each_view(data, teacher):
    views = compute_cached_views(teacher, data, 3, "t", batch_size=4, device=CPU)
    assert views.cached_logits.shape == (3, 6, 3) and views.cached_logits.dtype == torch.float16
    assert views.crop.shape == (3, 6, 2) and views.flip.shape == (3, 6)
    assert not torch.equal(views.crop[0], views.crop[1])  # different draws per view
    for k in range(3):
        images = apply_views(data.train.images, data.augment, views.view(k))
        with torch.no_grad():
            expected = teacher(normalised(images))
        torch.testing.assert_close(views.cached_logits[k].float(), expected, atol=2e-3, rtol=1e-3)  # fp16 storage
    again = compute_cached_views(teacher, data, 3, "t", batch_size=6, device=CPU)
    assert torch.equal(again.crop, views.crop) and torch.equal(again.flip, views.flip)
    other = compute_cached_views(teacher, data, 3, "other", batch_size=4, device=CPU)
    assert not torch.equal(other.crop, views.crop)


def test_views_file_round_trip_and_refuses_other_data(data, teacher, tmp_path):
    views = compute_cached_views(teacher, data, 2, "t", batch_size=4, device=CPU)
    path = tmp_path / "views2.pt"
    save_cached_views(path, views, {"dataset_fingerprint": data.fingerprint})
    loaded = load_cached_views(path, data.fingerprint)
    assert torch.equal(loaded.cached_logits, views.cached_logits) and torch.equal(loaded.crop, views.crop)
    with pytest.raises(UserError, match="fingerprint"):
        load_cached_views(path, "another")


def test_a_student_trains_on_view_e_mod_k_with_its_cached_logits(data, teacher):
    views = compute_cached_views(teacher, data, 2, "t", batch_size=4, device=CPU)
    with seeded_init(1, "init"):
        student = build_model("cnn", 3, 1, width=2)
    loss = build_loss("kd", alpha=0.9, temperature=4)
    seen = []  # (student input, teacher logits given to the loss) of every step
    inputs = []
    student.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
    loss.register_forward_hook(lambda module, args, out: seen.append((inputs[-1], args[2].detach().clone())))
    history = fit(student, data, torch.arange(6), TrainConfig(epochs=3, batch_size=3), seed=0, device=CPU,
                  loss=loss, teacher=views, log=lambda line: None)
    assert len(history) == 3 and len(seen) == 3 * 2
    with torch.no_grad():
        for x, cached in seen:  # the cached logits are the teacher's on the very images the student saw
            torch.testing.assert_close(cached, teacher(x), atol=2e-3, rtol=1e-3)
    # epochs 1 and 3 show every sample in view 0, epoch 2 in view 1: the inputs of a sample differ
    # between epochs 1 and 2 and agree between 1 and 3 (found by its cached logits)
    def images_by_logits(epoch):
        return {tuple(t.tolist()): x for xs, ts in seen[2 * epoch:2 * epoch + 2] for x, t in zip(xs, ts)}
    first, second, third = images_by_logits(0), images_by_logits(1), images_by_logits(2)
    assert first.keys() == third.keys() and not first.keys() & second.keys()


def test_cached_views_need_augmentation(data, teacher):
    views = compute_cached_views(teacher, data, 1, "t", batch_size=4, device=CPU)
    with pytest.raises(UserError, match="augment"):
        fit(build_model("cnn", 3, 1, width=2), data, torch.arange(6), TrainConfig(epochs=1, batch_size=3, augment=False),
            seed=0, device=CPU, loss=build_loss("kd"), teacher=views, log=lambda line: None)


def test_each_source_says_which_losses_it_cannot_serve():
    kd, ce = build_loss("kd"), build_loss("ce")
    vid = build_loss("vid", student_layers=["features.2"], teacher_layers=["features.2"])
    assert NoTeacher.problem(ce, True) is None and NoTeacher.problem(kd, True) == "the loss needs a teacher"
    assert OnlineTeacher.problem(kd, False) is None and OnlineTeacher.problem(vid, True) is None
    assert OnlineTeacher.problem(ce, True) == "the loss uses no teacher"
    assert CachedViews.problem(kd, True) is None
    assert "uses no teacher" in CachedViews.problem(ce, True)
    assert "reads teacher features" in CachedViews.problem(vid, True)
    assert "without augmentation" in CachedViews.problem(kd, False)


def test_the_online_teacher_runs_folded_unless_the_loss_hooks_its_layers(data, teacher):
    """KD reads only logits, so the teacher runs with its BatchNorms folded into the convolutions
    (the same logits to float rounding); VID hooks the teacher's own layers, so it runs as it is."""
    x, _, idx = next(data.train.batches(torch.arange(6), 6, device=CPU))
    with torch.no_grad():
        expected = teacher.eval()(x)
    kd = OnlineTeacher(teacher).start(build_loss("kd"), True, CPU)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in kd._forward.modules())
    torch.testing.assert_close(kd.logits(x, idx, 0), expected, rtol=1e-5, atol=1e-6)
    vid = OnlineTeacher(teacher).start(build_loss("vid", student_layers=["features.2"], teacher_layers=["features.2"]), True, CPU)
    assert vid._forward is teacher
    torch.testing.assert_close(vid.logits(x, idx, 0), expected, rtol=0, atol=0)
    assert vid.features["features.2"].shape[1] == teacher.features[0].out_channels
    vid.stop()


def test_a_loss_that_needs_a_teacher_is_refused_without_one(data):
    with pytest.raises(UserError, match="^NoTeacher cannot serve loss HintonKD: the loss needs a teacher$"):
        fit(build_model("cnn", 3, 1, width=2), data, torch.arange(6), TrainConfig(epochs=1, batch_size=3),
            seed=0, device=CPU, loss=build_loss("kd"), log=lambda line: None)


def test_online_and_cached_teachers_give_the_same_logits_on_the_same_batch(data, teacher):
    views = compute_cached_views(teacher, data, 1, "t", batch_size=6, device=CPU)
    online = OnlineTeacher(teacher).start(build_loss("kd"), True, CPU)
    cached = views.start(build_loss("kd"), True, CPU)
    x, _, idx = next(data.train.batches(torch.arange(6), 6, device=CPU, augment=data.augment, views=cached.views(0)))
    torch.testing.assert_close(cached.logits(x, idx, 0), online.logits(x, idx, 0), atol=2e-3, rtol=1e-3)
    assert cached.logits(x, idx, 0).dtype == online.logits(x, idx, 0).dtype == torch.float32
    # and so the same KD loss for a student's logits on that batch (the cache stores fp16 logits)
    kd, labels = build_loss("kd"), data.train.labels[idx]
    student = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    from_cache = sum(kd(student, labels, cached.logits(x, idx, 0)).values())
    from_teacher = sum(kd(student, labels, online.logits(x, idx, 0)).values())
    torch.testing.assert_close(from_cache, from_teacher, atol=1e-3, rtol=1e-3)
