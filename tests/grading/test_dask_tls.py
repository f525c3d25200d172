"""The grading cluster's TLS set (``course dask certs``) and the client's side of it, without
a cluster: the loopback cluster test (``test_dask_cluster.py``) runs the whole batch over TLS
and shows who is refused."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from autograder.cli import main
from autograder.course.config import Course, check_config, load_course
from autograder.errors import ConfigError
from autograder.grading import dask_tls
from autograder.grading.dask_executor import DaskExecutor

ROOT = Path(__file__).resolve().parents[2]


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_course_dask_certs_makes_a_set_the_ca_signed_with_a_private_key(tmp_path):
    """Does `course dask certs` write a CA, a certificate that CA signed (for client and server
    use, naming the hosts given) and a key no other user can read; and does a second run make
    a new CA, under which the old certificate no longer passes?"""
    folder = tmp_path / "tls"
    assert main(["dask", "certs", str(folder), "--host", "course-grading-scheduler",
                 "--host", "10.0.0.7"]) == 0
    files = {p.name for p in folder.iterdir()}
    assert files == {"ca.pem", "node.pem", "node-key.pem"}
    assert stat.S_IMODE((folder / "node-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    ca, node = _cert(folder / "ca.pem"), _cert(folder / "node.pem")
    node.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not node.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usage} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "course-grading-scheduler" in names.get_values_for_type(x509.DNSName)
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.0.0.7"}
    (folder / "node-key.pem.new").write_text("left by an interrupted run")
    (folder / "node-key.pem.new").chmod(0o644)
    dask_tls.make_certs(folder)
    assert stat.S_IMODE((folder / "node-key.pem").stat().st_mode) == 0o600
    with pytest.raises(Exception):  # a new CA: the old certificate is not its
        node.verify_directly_issued_by(_cert(folder / "ca.pem"))
    _cert(folder / "node.pem").verify_directly_issued_by(_cert(folder / "ca.pem"))


def test_a_tls_folder_missing_a_file_names_it_and_the_command(tmp_path):
    dask_tls.make_certs(tmp_path)
    (tmp_path / "node-key.pem").unlink()
    with pytest.raises(ConfigError) as info:
        dask_tls.client_security(tmp_path)
    assert info.value.message == f"grading.dask_tls_dir: {tmp_path} lacks node-key.pem"
    assert f"course dask certs {tmp_path}" in info.value.hint


def _course(**grading) -> Course:
    course = load_course(ROOT)
    return Course(root=course.root,
                  config=replace(course.config, grading=replace(course.config.grading, **grading)))


def test_the_config_check_accepts_a_complete_tls_setup_and_names_each_half_missing(tmp_path):
    """TLS needs both halves: a tls:// scheduler and the folder of files. Is a complete setup
    accepted, and is each half alone refused naming the field that was set?"""
    dask_tls.make_certs(tmp_path / "tls")
    assert check_config(_course(executor="dask", dask_scheduler="tls://h:8786",
                                dask_tls_dir=str(tmp_path / "tls")), sections=("grading",)) == []
    only_dir = check_config(_course(executor="dask", dask_scheduler="tcp://h:8786",
                                    dask_tls_dir=str(tmp_path / "tls")), sections=("grading",))
    assert [p.split(":")[0] for p in only_dir] == ["grading.dask_tls_dir"]
    only_scheme = check_config(_course(executor="dask", dask_scheduler="tls://h:8786"),
                               sections=("grading",))
    assert [p.split(":")[0] for p in only_scheme] == ["grading.dask_scheduler"]


def test_a_client_with_the_tls_set_refuses_a_plain_tcp_scheduler_before_connecting(tmp_path):
    """The client would send notebooks in clear text: it must stop before any connection."""
    dask_tls.make_certs(tmp_path)
    with pytest.raises(ConfigError) as info:
        DaskExecutor(concurrency=1, address="tcp://127.0.0.1:1",
                     security=dask_tls.client_security(tmp_path))
    assert info.value.message == ("grading.dask_tls_dir: is set, but grading.dask_scheduler "
                                  "'tcp://127.0.0.1:1' is not a tls:// address")
    assert "tls://host:port" in info.value.hint


def test_a_tls_scheduler_without_the_tls_set_says_which_setting_is_missing():
    """Without certificates a tls:// address cannot work: is that one clear error naming the
    empty setting, not Dask's own TypeError about an SSL context?"""
    with pytest.raises(ConfigError) as info:
        DaskExecutor(concurrency=1, address="tls://127.0.0.1:1")
    assert info.value.message == ("grading.dask_scheduler: 'tls://127.0.0.1:1' speaks TLS, but "
                                  "grading.dask_tls_dir is empty")
    assert "course dask certs DIR" in info.value.hint


def test_a_local_cluster_speaks_tls_that_no_other_local_process_can_join():
    """A LocalCluster's port is open to every user of the machine, and its workers run as
    root: does it listen with TLS and refuse a plain client?"""
    from distributed import Client

    executor = DaskExecutor(concurrency=1)
    try:
        address = executor._client.scheduler.address
        assert address.startswith("tls://"), address
        assert executor.submit(lambda slot: slot + 41).result(timeout=60) == 41
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout="5s")
    finally:
        executor.shutdown()
