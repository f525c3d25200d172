"""The test zoo: one tiny notebook per behaviour the grader must survive or report.

Each entry is a list of code cell sources; :func:`build` turns it into an nbformat 4
notebook in memory. Names such as ``conv1_params`` are the assignment's real answer
names, used here as carriers so the export can show what the kernel saw. No entry
imports TensorFlow except ``KERAS_MODEL`` (it is slow).
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HELLO = ["conv1_params = 416\nprint('hello')", "conv2_params = conv1_params * 10 - 32"]

ERROR_THEN_OK = ["conv1_params = 416", "raise ValueError('wrong shape')", "conv2_params = 4128"]

INFINITE_LOOP = ["conv1_params = 416", "while True:\n    pass", "conv2_params = 4128"]

IGNORES_SIGINT = [
    "conv1_params = 416",
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    "conv2_params = 4128",
]

# Bounded: 1 GB at most even if the memory limit failed.
MEMORY_BOMB = [
    "conv1_params = 416",
    "blocks = []\nfor _ in range(20):\n    blocks.append(b'\\x01' * (50 * 2**20))",
    "conv2_params = 4128",
]

# Bounded: 200 sleeping children at most even if the pids limit failed.
FORK_BOMB = [
    "conv1_params = 416",
    "import os, time\nkids = []\nfor _ in range(200):\n    pid = os.fork()\n"
    "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    kids.append(pid)",
    "conv2_params = len(kids)",
]

OS_EXIT = ["conv1_params = 416", "import os\nos._exit(3)", "conv2_params = 4128"]

SEGFAULT = ["conv1_params = 416", "import ctypes\nctypes.string_at(0)", "conv2_params = 4128"]

HUGE_LINE = ["print('x' * 100_000_000)", "conv1_params = 416"]

# 2 MB in 100-byte lines: a hundred times the tests' 20 kB cap, yet quick to print even on
# a loaded machine (20 MB once took longer than the 3 s cell timeout under CI).
MANY_LINES = [
    "import sys\nfor i in range(20_000):\n    print('y' * 99)\n"
    "    if i % 100 == 0:\n        sys.stdout.flush()",
    "conv1_params = 416",
]

NETWORK = [
    "import socket\nresults = []\n"
    "for host, port in [('127.0.0.1', 22), ('127.0.0.1', 80), ('8.8.8.8', 53), ('1.1.1.1', 443)]:\n"
    "    try:\n        socket.create_connection((host, port), timeout=2).close()\n"
    "        results.append('connected')\n"
    "    except OSError as exc:\n        results.append(type(exc).__name__)\n"
    "backbone_layers = results",
]

# Course files, by their paths in the checkout under test (never one machine's paths).
COURSE_FILES = {
    "read course_config": "course_config.py",
    "read source notebook": "source/cnn_transfer/cnn_transfer.ipynb",
    "read rubric": "autograder/rubric/cnn_transfer",
}


def filesystem(repo) -> list[str]:
    """Reach for the host's secrets; ``repo`` is the checkout under test."""
    course_probes = "".join(
        f"attempt({label!r}, lambda: read({str(repo / rel)!r}))\n"
        for label, rel in COURSE_FILES.items())
    return [
        "import os\nresults = {}\n"
        "def attempt(label, fn):\n"
        "    try:\n        fn()\n        results[label] = 'allowed'\n"
        "    except OSError as exc:\n        results[label] = type(exc).__name__\n"
        "def read(path):\n"
        "    return os.listdir(path) if os.path.isdir(path) else open(path).read()\n"
        "attempt('read /root', lambda: os.listdir('/root'))\n"
        + course_probes +
        "attempt('read job scratch', lambda: [os.listdir(f'/run/course-sandbox/{d}/scratch')\n"
        "    for d in os.listdir('/run/course-sandbox')])\n"
        "attempt('write venv', lambda: open(os.path.join(os.__file__.rsplit('/lib/', 1)[0], 'x'), 'w'))\n"
        "attempt('write venv site', lambda: open(__import__('sys').prefix + '/evil.pth', 'w'))\n"
        "attempt('write root', lambda: open('/evil', 'w'))\n"
        "attempt('write helpers', lambda: open('course_helpers.py', 'a'))\n"
        "attempt('write scratch', lambda: open('mine.txt', 'w').write('ok'))\n"
        "chosen_model = sorted(results.items())",
    ]


DISK_FILLER = [
    "conv1_params = 416",
    "with open('/tmp/fill', 'wb') as f:\n    for _ in range(200):\n        f.write(b'\\0' * 2**20)",
    "conv2_params = 4128",
]

# Many files, each under the file-size limit: only the tmpfs cap itself can stop them.
MANY_SMALL_FILES = [
    "conv1_params = 416",
    "import os\nfor i in range(40):\n    with open(f'/tmp/part{i}', 'wb') as f:\n"
    "        f.write(b'\\0' * 4 * 2**20)",
    "conv2_params = 4128",
]

# Double fork + setsid: the grandchild outlives its parent and the cell.
SETSID_DAEMON = [
    "import os, time\nr, w = os.pipe()\npid = os.fork()\n"
    "if pid == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
    "        os.write(w, b'up')\n        time.sleep(4)\n"
    "        open('/sandbox/export/daemon-was-here', 'w').write('rewritten grade')\n"
    "        os._exit(0)\n    os._exit(0)\n"
    "os.waitpid(pid, 0)\nchosen_model = os.read(r, 2).decode()",
]

MONKEYPATCH = [
    "conv1_params = 999",
    "import builtins, numpy, numpy.testing\n"
    "numpy.testing.assert_allclose = lambda *a, **k: None\n"
    "numpy.testing.assert_equal = lambda *a, **k: None\n"
    "builtins.print = lambda *a, **k: None\n"
    "builtins.AssertionError = type('AssertionError', (Exception,), {})",
    "conv2_params = numpy.int64(7)",
]

INPUT_TRANSFORMER = [
    "conv1_params = 416",
    "ip = get_ipython()\n"
    "ip.input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"
    "import ast\nclass Nop(ast.NodeTransformer):\n"
    "    def visit_Module(self, node):\n        return ast.Module(body=[ast.Pass()], type_ignores=[])\n"
    "ip.ast_transformers.append(Nop())",
    "conv2_params = 4128",
]

SEEDED = [
    "import os, random\nconv1_params = random.randint(0, 10**9)\n"
    "chosen_model = [os.environ.get(k) for k in "
    "('COURSE_PROFILE', 'COURSE_WEIGHTS_MODE', 'COURSE_DATA_DIR')]\n"
    "import course_helpers\nbackbone_layers = sorted(os.listdir(os.environ['COURSE_DATA_DIR']))",
    "import sys\nprint('a warning', file=sys.stderr)\nimport warnings\nwarnings.warn('careful')",
]

BUDGET = ["import time\ntime.sleep(2.5)\nconv1_params = 1"] * 3 + ["conv2_params = 2"]

KERAS_MODEL = [
    "import keras\ninputs = keras.Input((4,))\n"
    "cnn_model = keras.Model(inputs, keras.layers.Dense(1, activation='sigmoid')(inputs))\n"
    "cnn_model.compile(optimizer='adam', loss='binary_crossentropy')\n"
    "import numpy as np\ncnn_history = cnn_model.fit(np.zeros((8, 4)), np.zeros(8), epochs=2, verbose=0)\n"
    "tl_model = 'not a model'",
]

SLOW_SECOND_SAVE = [
    "import keras, time\n"
    "ft_model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(1)])\n"
    "class Slow(keras.Sequential):\n"
    "    def save(self, *args, **kwargs):  # the export saves the larger ft_model first\n"
    "        time.sleep(1.5)  # ... and the grader takes that file meanwhile\n"
    "        return super().save(*args, **kwargs)\n"
    "cnn_model = Slow([keras.Input((4,)), keras.layers.Dense(1)])",
]

DIES_IN_THE_EXPORT = [
    "import keras, os, time\n"
    "ft_model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(1)])\n"
    "class Dies(keras.Sequential):\n"
    "    def save(self, *args, **kwargs):  # the export saves the larger ft_model first\n"
    "        time.sleep(1.5)  # ... and the grader takes that file meanwhile\n"
    "        os._exit(3)\n"
    "cnn_model = Dies([keras.Input((4,)), keras.layers.Dense(1)])",
]


def build(sources: list[str], *, markdown_first: bool = True) -> nbformat.NotebookNode:
    """A notebook with one code cell per source (and a markdown cell first, like a release)."""
    cells = [new_markdown_cell("# Assignment")] if markdown_first else []
    cells += [new_code_cell(source) for source in sources]
    return new_notebook(cells=cells)
