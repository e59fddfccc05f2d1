"""The nginx helper: found or clearly absent, started and stopped cleanly (twenty times), reloaded, replaced by name."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab_helpers.nginx as nginx_module
from lab_helpers import (
    LabError,
    LabSession,
    Nginx,
    NginxError,
    NginxUnavailable,
    find_nginx,
    nginx_available,
    nginx_info,
    running_nginx,
)

needs_nginx = pytest.mark.skipif(
    not nginx_available(), reason="nginx is not installed (apt-get install nginx)"
)

HELLO = """
server {
    listen 127.0.0.1:{{ port }};
    location / { return 200 "{{ word }}\\n"; }
}
"""


@pytest.fixture(autouse=True)
def fresh_info_cache() -> Iterator[None]:
    nginx_module._info_for.cache_clear()
    yield
    nginx_module._info_for.cache_clear()


@pytest.fixture
def lab_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path / "lab-files"))
    return tmp_path / "lab-files"


def get(url: str) -> str:
    with LabSession(timeout=5) as session:
        return session.get(url).text


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


# -- finding nginx, or saying how to get it --------------------------------------------------------------


def test_hidden_nginx_is_unavailable_with_a_message_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MTLS_NGINX", "off")
    assert find_nginx() is None and not nginx_available() and not nginx_available(passthrough=True)
    with pytest.raises(NginxUnavailable, match="apt-get install nginx libnginx-mod-stream") as caught:
        nginx_info()
    assert "brew install nginx" in str(caught.value) and "MTLS_NGINX=off" in str(caught.value)
    with pytest.raises(NginxUnavailable):
        Nginx(http=HELLO)


def test_a_missing_binary_named_in_the_variable_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MTLS_NGINX", str(tmp_path / "no-such-nginx"))
    assert find_nginx() is None
    with pytest.raises(NginxUnavailable, match="not installed"):
        nginx_info()


def fake_nginx(folder: Path, version: str, arguments: str) -> Path:
    """A script that answers `nginx -V` as a given build would (on stderr, as nginx does)."""
    script = folder / "nginx"
    script.write_text(
        "#!/bin/sh\n"
        f"echo 'nginx version: nginx/{version}' >&2\n"
        "echo 'built with OpenSSL 3.0.0' >&2\n"
        f"echo 'configure arguments: {arguments}' >&2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for nginx")
def test_stream_built_in_is_recognised_as_homebrew_builds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = fake_nginx(
        tmp_path, "1.27.3", "--prefix=/opt/homebrew --with-stream --with-stream_ssl_preread_module"
    )
    monkeypatch.setenv("MTLS_NGINX", str(binary))
    info = nginx_info()
    assert info.version == (1, 27, 3) and info.stream == "built in" and info.stream_module is None
    assert info.can_passthrough and "stream module built in" in info.describe()


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for nginx")
def test_a_dynamic_stream_module_is_found_in_the_builds_modules_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    arguments = f"--modules-path={modules} --with-stream=dynamic --with-stream_ssl_preread_module"
    monkeypatch.setenv("MTLS_NGINX", str(fake_nginx(tmp_path, "1.22.1", arguments)))
    monkeypatch.setattr(nginx_module, "_MODULE_DIRECTORIES", ())
    assert nginx_info().stream is None  # the package with the module is not installed: no passthrough
    assert not nginx_available(passthrough=True) and nginx_available()
    nginx_module._info_for.cache_clear()
    (modules / "ngx_stream_module.so").write_bytes(b"")
    info = nginx_info()
    assert (
        info.stream == "module"
        and info.stream_module == modules / "ngx_stream_module.so"
        and info.can_passthrough
    )


@pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="needs Debian's /usr/sbin/nginx")
def test_nginx_in_usr_sbin_is_found_without_it_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian puts nginx in /usr/sbin, which an ordinary user's PATH lacks."""
    monkeypatch.delenv("MTLS_NGINX", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert find_nginx() == Path("/usr/sbin/nginx")


# -- running it ---------------------------------------------------------------------------------------------


@needs_nginx
def test_started_and_stopped_twenty_times_leaves_no_process_port_or_pid_file(lab_folder: Path) -> None:
    seen_pids: list[int] = []
    for round_number in range(20):
        with Nginx(http=HELLO, values={"word": f"round {round_number}"}, name="twenty") as proxy:
            assert get(f"http://127.0.0.1:{proxy.port}/") == f"round {round_number}\n"
            master, workers, port = proxy.pid, set(proxy._workers), proxy.port
            assert master is not None and workers and proxy.pid_file.exists()
        assert master is not None
        seen_pids += [master, *workers]
        assert not proxy.running and not proxy.pid_file.exists() and refuses(port)
    assert not any(nginx_module._alive(pid) for pid in seen_pids)
    assert "twenty" not in running_nginx()


@needs_nginx
def test_everything_nginx_writes_stays_in_its_folder(lab_folder: Path) -> None:
    with Nginx(http=HELLO, values={"word": "hi"}, name="files") as proxy:
        get(f"http://127.0.0.1:{proxy.port}/")
        written = {path.name for path in proxy.directory.iterdir()}
        text = proxy.config_text
    assert proxy.directory == lab_folder / "nginx" / "files"
    assert {"nginx.conf", "error.log", "access.log", "temp"} <= written
    for directive in (
        "pid ",
        "error_log ",
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
        "access_log ",
    ):
        line = next(line for line in text.splitlines() if line.strip().startswith(directive))
        assert str(proxy.directory) in line, line
    assert "daemon off;" in text
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    assert ("\nuser " in text) == is_root  # as root, workers keep the notebook's user


@needs_nginx
def test_starting_under_a_running_name_replaces_the_previous_instance(lab_folder: Path) -> None:
    first = Nginx(http=HELLO, values={"word": "first"}, name="replace-me").start()
    second = Nginx(http=HELLO, values={"word": "second"}, name="replace-me").start()
    try:
        assert not first.running and refuses(first.port)
        assert (
            running_nginx()["replace-me"] is second and get(f"http://127.0.0.1:{second.port}/") == "second\n"
        )
    finally:
        second.stop()
        first.stop()


@needs_nginx
def test_an_instance_left_by_a_dead_kernel_is_stopped_at_the_next_start(lab_folder: Path) -> None:
    orphan = Nginx(http=HELLO, values={"word": "orphan"}, name="stale").start()
    pid = orphan.pid
    assert pid is not None
    process = orphan._process
    orphan._process = None  # the kernel died: nobody holds the process any more
    Nginx._running.forget("stale", orphan)
    try:
        with Nginx(http=HELLO, values={"word": "new"}, name="stale") as fresh:
            assert fresh.pid != pid and get(f"http://127.0.0.1:{fresh.port}/") == "new\n"
            assert process is not None and process.wait(timeout=5) is not None  # the old master was stopped
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc here to tell a zombie")


@needs_proc
def test_a_process_that_exited_unreaped_is_not_alive() -> None:
    """A zombie answers signal 0, but it has exited: a stale nginx must not be waited for until a timeout."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while not nginx_module._is_zombie(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # not reaped: nobody calls wait() until the end of the test
        os.kill(child.pid, 0)  # still there for the kernel...
        assert not nginx_module._alive(child.pid)  # ...but not alive
    finally:
        child.wait(timeout=10)


@needs_proc
def test_a_running_process_is_alive_and_not_a_zombie() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert nginx_module._alive(child.pid) and not nginx_module._is_zombie(child.pid)
    finally:
        child.kill()
        child.wait(timeout=10)


@needs_proc
def test_a_process_whose_name_is_not_utf8_is_still_judged() -> None:
    """/proc/PID/stat holds the command name as raw bytes: a name that is not UTF-8 must not break the reading."""
    rename = "import ctypes, sys, time; ctypes.CDLL(None).prctl(15, b'ng\\xffx', 0, 0, 0); print('renamed', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", rename], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "renamed\n"
        assert b"\xff" in Path(f"/proc/{child.pid}/stat").read_bytes()  # the name took
        assert nginx_module._alive(child.pid)
    finally:
        child.kill()
        child.wait(timeout=10)


@needs_nginx
def test_reload_applies_a_new_configuration_on_the_same_port(lab_folder: Path) -> None:
    with Nginx(http=HELLO, values={"word": "before"}, name="reload") as proxy:
        port = proxy.port
        assert get(f"http://127.0.0.1:{port}/") == "before\n"
        proxy.reload(values={"word": "after"})
        assert proxy.port == port
        assert [get(f"http://127.0.0.1:{port}/") for _ in range(5)] == ["after\n"] * 5


@needs_nginx
def test_a_refused_reload_keeps_the_running_configuration(lab_folder: Path) -> None:
    with Nginx(http=HELLO, values={"word": "kept"}, name="bad-reload") as proxy:
        with pytest.raises(NginxError, match="unknown directive"):
            proxy.reload(http=HELLO + "\nnot_a_directive on;\n")
        assert get(f"http://127.0.0.1:{proxy.port}/") == "kept\n"
        assert "not_a_directive" not in proxy.config_file.read_text()


@needs_nginx
def test_a_bad_configuration_gets_nginxs_own_words(lab_folder: Path) -> None:
    with pytest.raises(NginxError, match='unknown directive "not_a_directive"'):
        Nginx(http="not_a_directive on;", name="bad").start()
    assert "bad" not in running_nginx()


MISSING_SEMICOLON = """
server {
    listen 127.0.0.1:{{ port }};
    location / {
        return 200 "hi\\n"
    }
}
"""


@needs_nginx
def test_a_refused_line_is_named_in_the_text_the_caller_wrote(lab_folder: Path) -> None:
    """nginx says nginx.conf:22, a file the caller never wrote line by line: the message adds line 6 of their text."""
    with pytest.raises(NginxError) as refused:
        Nginx(http=MISSING_SEMICOLON, name="semicolon").start()
    message = str(refused.value)
    assert message.startswith("nginx refused the configuration: nginx: [emerg] unexpected")
    assert message.count("nginx refused the configuration") == 1
    assert message.endswith("(line 6 of the http= text: '}')")
    # the twin: with the semicolon, the same text starts
    with Nginx(http=MISSING_SEMICOLON.replace('"hi\\n"', '"hi\\n";'), name="semicolon") as fixed:
        assert get(f"http://127.0.0.1:{fixed.port}/") == "hi\n"


@needs_nginx
def test_a_missing_brace_is_named_as_the_end_of_the_text(lab_folder: Path) -> None:
    unbalanced = MISSING_SEMICOLON.replace('"hi\\n"', '"hi\\n";').replace("    }\n}\n", "    }\n")
    with pytest.raises(NginxError, match=r"just after the end of the http= text: check that its braces"):
        Nginx(http=unbalanced, name="brace").start()


@needs_nginx
def test_an_unknown_placeholder_is_refused_with_the_known_names(lab_folder: Path) -> None:
    with pytest.raises(LabError, match=r"\{\{ backend \}\}, which has no value.*Known: dir, lab, port"):
        Nginx(http="location / { proxy_pass http://127.0.0.1:{{ backend }}; }", name="placeholder").start()


@needs_nginx
def test_a_port_taken_between_choice_and_bind_is_chosen_again(
    lab_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = socket.create_server(("127.0.0.1", 0))
    real_free_port = nginx_module._free_port
    offered = iter([busy.getsockname()[1]])
    monkeypatch.setattr(nginx_module, "_free_port", lambda host: next(offered, None) or real_free_port(host))
    try:
        with Nginx(http=HELLO, values={"word": "moved"}, name="race") as proxy:
            assert proxy.port != busy.getsockname()[1] and get(f"http://127.0.0.1:{proxy.port}/") == "moved\n"
            assert "Address already in use" in proxy.error_log(200)  # the first attempt met the busy port
    finally:
        busy.close()


@needs_nginx
def test_when_every_attempt_meets_a_busy_port_the_error_says_so(
    lab_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setattr(nginx_module, "_free_port", lambda host: busy.getsockname()[1])
    try:
        with pytest.raises(NginxError, match="could not bind free ports after 1 attempts"):
            Nginx(http=HELLO, values={"word": "never"}, name="race-lost", attempts=1).start()
    finally:
        busy.close()


def test_doctor_reports_nginx_and_its_stream_module_or_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab_helpers.doctor import _report_nginx

    lines: list[tuple[str, str, str]] = []
    monkeypatch.setenv("MTLS_NGINX", "off")
    _report_nginx(lambda status, what, detail="": lines.append((status, what, detail)))
    assert (
        lines == [("warn", "nginx", lines[0][2])]
        and "apt-get install nginx libnginx-mod-stream" in lines[0][2]
    )
    if nginx_available():
        monkeypatch.delenv("MTLS_NGINX")
        nginx_module._info_for.cache_clear()
        lines.clear()
        _report_nginx(lambda status, what, detail="": lines.append((status, what, detail)))
        assert lines[0][:2] == ("ok", "nginx") and str(nginx_info().binary) in lines[0][2]
        expected = "ok" if nginx_available(passthrough=True) else "warn"
        assert lines[1][0] == expected and "stream module" in lines[1][1]
