"""--console-socket: with process.terminal the container's pty master arrives over the socket
(SCM_RIGHTS), as containerd's shim and conmon expect; the container sees a tty on stdio."""
from __future__ import annotations

import os
import socket

from conftest import read_pty_until


def test_console_socket_receives_pty_master(runtime, bundle, tmp_path):
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["consoleSize"] = {"height": 33, "width": 101}
    bundle.set_args("sh", "-c", "tty; stty size; [ -t 0 ] && echo stdin-is-tty")
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), "--console-socket", sock_path, cid)
    assert p.returncode == 0, p.stderr
    conn, _ = server.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    conn.close()
    server.close()
    assert len(fds) == 1
    master = fds[0]
    runtime("start", cid, check=True)
    out = read_pty_until(master, b"stdin-is-tty")
    os.close(master)
    text = out.decode()
    assert "/dev/pts/" in text
    assert "33 101" in text
    assert "stdin-is-tty" in text
    runtime("delete", "--force", cid, check=True)


def test_terminal_without_console_socket_is_refused_on_create(runtime, bundle):
    bundle.config["process"]["terminal"] = True
    bundle.write()
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1 and "console socket" in p.stderr
    assert not (runtime.root / cid).exists()


def test_run_in_foreground_with_terminal_proxies_the_pty(runtime, bundle):
    """runc's behaviour: `run` without --console-socket gives the container a pty of its own and
    copies between it and our stdio."""
    bundle.config["process"]["terminal"] = True
    bundle.set_args("sh", "-c", "tty; [ -t 1 ] && echo stdout-is-tty; exit 5")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 5, p.stderr
    assert "/dev/pts/" in p.stdout and "stdout-is-tty" in p.stdout
