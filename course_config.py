"""The course, in one place. Edit values here; `course config check` validates them.

Pure data: no I/O, no logic. The meaning and default of every field is documented
in autograder/course/settings.py.

A question's points are not set here: they are the nbgrader points of its autograded
cell in source/<assignment>/<notebook> (nbgrader's Create Assignment toolbar), the one
place they live; `course release` shows them to students with the limits below.
"""

from autograder.course.settings import (
    Assignment,
    CourseConfig,
    DatasetSettings,
    GradingSettings,
    HubSettings,
    Limits,
    Profile,
    WeightsSettings,
)

CNN_TRANSFER = Assignment(
    assignment_id="cnn_transfer",
    notebook="cnn_transfer.ipynb",
    answer_names=(
        "conv1_params",
        "conv2_params",
        "shape_stride1_valid",
        "shape_stride2_valid",
        "shape_stride2_same",
        "conv1_kernel_shape",
        "frozen_trainable_params",
        "frozen_non_trainable_params",
        "backbone_layers",
        "backbone_params",
        "embedding_shape",
        "ft_trainable_params",
        "chosen_model",
    ),
    model_names=("cnn_model", "tl_model", "ft_model"),
    history_names=("cnn_history", "tl_history", "ft_history"),
    accuracy_margin=0.15,
    calibration_seeds=(1, 2),  # plus grading.seed, always calibrated first
    uses_images=True,
    uses_backbone=True,
    trainings=("cnn", "head", "finetune"),
    accuracy_inputs={"cnn_model": "images", "tl_model": "embeddings", "ft_model": "images"},
    step_counted={"cnn_model": "cnn"},
)

PARAM_COUNTING = Assignment(
    assignment_id="param_counting",
    notebook="param_counting.ipynb",
    answer_names=(
        "dense_params",
        "conv_params",
        "pool_params",
        "pool_output_shape",
        "bn_params",
        "bn_trainable_params",
        "bn_non_trainable_params",
        "embedding_params",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "frozen_trainable_params",
        "frozen_non_trainable_params",
        "ft_frozen_trainable_params",
        "ft_frozen_non_trainable_params",
        "finetune_trainable_params",
        "finetune_non_trainable_params",
    ),
    model_names=("counting_model", "ft_model"),
    history_names=(),
    calibration_seeds=(1,),  # plus grading.seed; counts do not depend on the seed
    # no images, no ResNet50, no profile trainings: nothing but the notebook is needed
)

COURSE = CourseConfig(
    course_id="dl-cnn-101",
    assignments=(CNN_TRANSFER, PARAM_COUNTING),
    dataset=DatasetSettings(
        source="generated",
        seed=20_240_917,
        grading_seed=77_003_311,
        difficulty=0.05,
        image_size_px=224,
        batch_size=32,
        split_sizes={"train": 97, "validation": 50, "test": 38},
        grading_split_size=120,
    ),
    weights=WeightsSettings(mode="imagenet", cache_dir="/var/lib/course/weights"),
    limits=Limits(
        cell_timeout_s=240,
        notebook_budget_s=900,
        memory_mb=6144,
        max_processes=512,
        output_bytes=2_000_000,
        disk_mb=1024,
    ),
    profiles={
        "full": Profile(image_size_px=224, cnn_epochs=10, head_epochs=10, finetune_epochs=10),
        "reduced": Profile(image_size_px=96, cnn_epochs=5, head_epochs=5, finetune_epochs=2),
    },
    default_profile="full",
    grading=GradingSettings(concurrency=2, executor="local", seed=1234),
    hub=HubSettings(
        port=18_000,
        instructor="instructor",
        students=("student1", "student2"),
        # Production (hub/README.md): the image you built from ./Dockerfile and pushed.
        image_name="registry.example.org/course/notebook",
        image_tag="0.1.0",
        cpu_grading_workers=2,
        gpu_grading_workers=1,
    ),
)
