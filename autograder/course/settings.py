"""The shape of ``course_config.py``: frozen dataclasses, one per concern.

``course_config.py`` builds one :class:`CourseConfig` out of these and does no
I/O. Every default lives here, once; validation (which needs the file system)
lives in :mod:`autograder.course.config`. Units are part of the field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Profile:
    """How big a run of the assignment notebook is.

    ``full`` is the recitation's specification; ``reduced`` keeps every step
    but shrinks images and epochs so that the test zoo fits CI's time.
    """

    image_size_px: int
    """Side of the square images fed to the models (the files stay 224 px)."""
    cnn_epochs: int
    """Epochs for the from-scratch CNN."""
    head_epochs: int
    """Epochs for the dense head on ResNet50 embeddings."""
    finetune_epochs: int
    """Epochs for fine-tuning the last layers of ResNet50."""


TRAININGS = tuple(f.name.removesuffix("_epochs") for f in fields(Profile) if f.name.endswith("_epochs"))
"""The trainings a profile sets epochs for (``cnn``, ``head``, ``finetune``): what an
assignment's ``trainings`` and a rubric's ``profile_dependent(epochs=...)`` may name."""


@dataclass(frozen=True)
class DatasetSettings:
    """Where the images come from and how they are split."""

    source: str = "generated"
    """``"generated"`` (built offline by ``course data build``) or a folder that
    already holds ``train|validation|test/<class>/`` and ``grading/<class>/``."""
    seed: int = 20_240_917
    """Seed of the student splits; each image is a function of (seed, split, class, index)."""
    grading_seed: int = 77_003_311
    """Independent seed stream for the hidden grading split."""
    difficulty: float = 0.05
    """0 = clean product shots, 1 = heavy clutter; calibrated in datasets/README.md."""
    classes: tuple[str, ...] = ("handbags", "shoes")
    """Class folder names; Keras sorts them, so the first is label 0."""
    image_size_px: int = 224
    """Side of the generated image files."""
    batch_size: int = 32
    split_sizes: dict[str, int] = field(
        default_factory=lambda: {"train": 97, "validation": 50, "test": 38}
    )
    """Images per student split, both classes together."""
    grading_split_size: int = 120
    """Images in the hidden grading split, both classes together."""
    build_dir: str = "datasets/build"
    """Student splits, relative to the course root (copied into each release)."""
    hidden_dir: str = "datasets/hidden"
    """The grading split, relative to the course root; never released."""
    manifest: str = "datasets/manifest.json"
    """Every generated file with its sha256."""


@dataclass(frozen=True)
class WeightsSettings:
    """ResNet50 ImageNet weights, from a pre-seeded read-only cache only."""

    mode: str = "imagenet"
    """``"imagenet"``: the verified file is required. ``"stand-in"``: same
    architecture with untrained weights, labelled as such everywhere."""
    cache_dir: str = "/var/lib/course/weights"
    """Read-only folder that holds the verified file; mounted read-only in sandboxes."""
    file_name: str = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    md5: str = "4d473c1dd8becc155b73f8504c6f6626"
    """The hash Keras declares for the file."""
    url: str = (
        "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    """Used only by ``course weights fetch`` on a machine with internet."""


@dataclass(frozen=True)
class Limits:
    """Runtime limits for one graded notebook; each one is enforced and tested."""

    cell_timeout_s: float = 240.0
    """A cell running longer is interrupted; grading goes on with the next cell."""
    notebook_budget_s: float = 900.0
    """Wall time for the whole notebook; past it the kernel is killed."""
    memory_mb: int = 6144
    """Resident memory of every process in the sandbox together (cgroup)."""
    max_processes: int = 512
    """Tasks (processes and threads) in the sandbox together (cgroup pids)."""
    output_bytes: int = 2_000_000
    """Bytes of output kept per cell; the rest is cut with a note."""
    disk_mb: int = 1024
    """Size of the sandbox's writable tmpfs (scratch copy, exports, temp)."""
    file_size_mb: int = 600
    """Largest single file the sandbox may write (RLIMIT_FSIZE); fits a saved model."""
    export_mb: int = 800
    """Everything the kernel exports together (models, JSON)."""


@dataclass(frozen=True)
class Assignment:
    """One assignment: a source notebook with solutions and its grading rubric."""

    assignment_id: str
    notebook: str
    """File name of the notebook inside ``source/<assignment_id>/``."""
    answer_names: tuple[str, ...]
    """Plain values the grader exports from the kernel (ints, floats, strings, lists)."""
    model_names: tuple[str, ...]
    """Keras models the grader exports as ``.keras`` files."""
    history_names: tuple[str, ...]
    """Variables holding ``keras.callbacks.History`` objects (or their ``.history`` dicts)."""
    points: dict[str, float] = field(default_factory=dict)
    """Points per rubric item (``grade_id -> points``), never written here: ``load_course``
    fills it from the nbgrader points of the notebook's autograded cells, the one place a
    question's points live. Set them in the source notebook (nbgrader's Create Assignment
    toolbar); ``course_config.py`` that sets ``points=`` is refused."""
    accuracy_margin: float = 0.15
    """Pass an accuracy item at (calibrated 10th percentile - margin)."""
    calibration_seeds: tuple[int, ...] = (1, 2, 3)
    """Seeds for ``course calibrate``: one reference run per seed."""
    uses_images: bool = False
    """The notebook reads the image splits: ``course release`` copies the student splits into
    ``data/``, and grading needs the generated dataset (``course data build``). Off, the
    release has no ``data/`` and grading never looks for the dataset."""
    uses_backbone: bool = False
    """The rubric judges models on the trusted ResNet50 (its weights, and its embeddings of the
    hidden splits, computed once per batch). Off, grading and calibration need no ResNet50
    weights and compute no embeddings; the answer key is ``<profile>-none.json``."""
    trainings: tuple[str, ...] = ()
    """The profile's trainings this notebook runs (``"cnn"``, ``"head"``, ``"finetune"``: the
    ``<name>_epochs`` fields of :class:`Profile`); the checker is told their epochs."""
    accuracy_inputs: dict[str, str] = field(default_factory=dict)
    """Model name -> what it is fed on the hidden grading split to measure its accuracy:
    ``"images"`` or ``"embeddings"`` (the trusted ResNet50's). Calibration sets a threshold for
    each; a model left out has no accuracy item."""
    step_counted: dict[str, str] = field(default_factory=dict)
    """Model name -> the training (one of ``trainings``) whose optimizer steps the reference must
    take exactly: epochs x ceil(train images / batch size), recorded in the key's ``training``."""
    gpu: bool | None = None
    """Grade this assignment on a GPU (see :attr:`GradingSettings.gpu`); ``None`` follows the
    course's ``grading.gpu``, ``False`` keeps a CPU-only assignment off the GPUs of a GPU course."""

    def grades_on_gpu(self, grading: GradingSettings) -> bool:
        return grading.gpu if self.gpu is None else bool(self.gpu)


@dataclass(frozen=True)
class GradingSettings:
    """How submissions are run and checked."""

    concurrency: int = 2
    """Submissions graded at once (one sandbox uid per slot)."""
    executor: str = "local"
    """``"local"`` (a process pool) or ``"dask"`` (a distributed scheduler)."""
    dask_scheduler: str = ""
    """Address of a remote Dask scheduler; empty starts a local cluster (over TLS with
    throwaway certificates, so no other local user can reach it)."""
    dask_tls_dir: str = ""
    """Folder (relative to the course root, or absolute) of the grading cluster's TLS set:
    ``ca.pem``, ``node.pem``, ``node-key.pem`` (``course dask certs DIR``). Set, the client
    presents it and requires it of the scheduler, whose address must then be ``tls://``; the
    scheduler and workers are started with the same files (``--tls-ca-file``, ``--tls-cert``,
    ``--tls-key``), so no process without them can submit work, join as a worker or read the
    traffic. Empty: plain ``tcp://`` (a cluster fenced by the network alone)."""
    gpu: bool = False
    """Grade on a GPU (each assignment may say otherwise: ``Assignment.gpu``): the sandbox gets
    the host's NVIDIA device nodes (``/dev/nvidia*``; none at all otherwise), and with Dask each
    submission asks for the worker resource ``GPU=1`` (workers started with
    ``--resources GPU=1``)."""
    sandbox_user_prefix: str = "course-sbx"
    """Unprivileged users ``<prefix>0``, ``<prefix>1``, ...; one per slot."""
    allow_unsandboxed: bool = False
    """Only for machines without bubblewrap/cgroups; never for real students."""
    seed: int = 1234
    """Seeds Python, NumPy and TensorFlow before the first student cell."""
    out_dir: str = "autograded"
    keep_models: bool = False
    """Keep exported ``.keras`` files after checking (they are ~200 MB each)."""
    answer_key_dir: str = "answer_keys"
    """Calibrated expected facts, outside release/."""


@dataclass(frozen=True)
class HubSettings:
    """The local JupyterHub used for demos and end-to-end tests, and what ``course hub render``
    writes for production (Zero to JupyterHub, the grading cluster: ``hub/README.md``)."""

    ip: str = "127.0.0.1"
    port: int = 18_000
    proxy_api_port: int = 18_001
    hub_port: int = 18_081
    service_port: int = 18_082
    """Port of the grade-on-submit service."""
    instructor: str = "instructor"
    students: tuple[str, ...] = ("student1", "student2")
    demo_password: str = "course-demo-pass"
    """Shared password for the local demo users (>= 8 characters)."""
    exchange_dir: str = "/srv/nbgrader/exchange"
    state_dir: str = ".course-state/hub"
    """Hub database, cookies, logs and PIDs, relative to the course root."""
    service_name: str = "autograder"
    gpu_limit: int = 1
    cpu_limit: float = 4.0
    mem_limit_gb: float = 16.0
    cpu_profile_cpu_limit: float = 2.0
    cpu_profile_mem_limit_gb: float = 8.0
    cull_idle_s: int = 3600
    image_name: str = "registry.example.org/course/notebook"
    """Production: the image built from this repository's ``Dockerfile`` and pushed, without its
    tag (``<registry>/<path>``); students' servers and the grading cluster both run it."""
    image_tag: str = "0.1.0"
    """Production: the tag of ``image_name`` you pushed (a version, never ``latest``)."""
    cpu_grading_workers: int = 2
    """Production: Dask workers without a GPU in the grading cluster (one submission each at a time)."""
    gpu_grading_workers: int = 1
    """Production: Dask workers with ``gpu_limit`` GPUs each; they advertise the Dask resource ``GPU``."""


@dataclass(frozen=True)
class CourseConfig:
    """Everything an instructor configures, in one object."""

    course_id: str
    assignments: tuple[Assignment, ...]
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    weights: WeightsSettings = field(default_factory=WeightsSettings)
    limits: Limits = field(default_factory=Limits)
    profiles: dict[str, Profile] = field(
        default_factory=lambda: {
            "full": Profile(image_size_px=224, cnn_epochs=10, head_epochs=10, finetune_epochs=10),
            "reduced": Profile(image_size_px=96, cnn_epochs=5, head_epochs=5, finetune_epochs=2),
        }
    )
    default_profile: str = "full"
    grading: GradingSettings = field(default_factory=GradingSettings)
    hub: HubSettings = field(default_factory=HubSettings)

    def assignment(self, assignment_id: str) -> Assignment:
        for assignment in self.assignments:
            if assignment.assignment_id == assignment_id:
                return assignment
        known = ", ".join(a.assignment_id for a in self.assignments)
        from autograder.errors import ConfigError

        raise ConfigError(
            f"unknown assignment {assignment_id!r}",
            hint=f"known assignments in course_config.py: {known}",
        )
