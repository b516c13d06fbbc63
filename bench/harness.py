"""What bench/run and bench/instructions share: the tools they install, how
they wait for a port, and the nginx and wxgate configs they run."""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"


def ensure_packages(who, *packages):
    """Installs the Debian packages whose program is missing (as root), or exits saying what to install."""
    missing = [p for p in packages if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}")]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"{who}: please install {' '.join(missing)} (e.g. sudo apt-get install {' '.join(missing)})")
    print(f"{who}: installing {' '.join(missing)}", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build():
    """Release builds of the wxgate binary and bench-tool."""
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "wxgate", "--example", "bench-tool"],
                   cwd=ROOT, check=True)


def wait_port(who, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{who}: nothing listens on port {port}")


def nginx_config(workdir, port, upstream_port, workers, single_process=False):
    """nginx as a plain proxy: proxy_pass with upstream keep-alive, no access log."""
    for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        (workdir / temp).mkdir(exist_ok=True)
    master = "master_process off;\n" if single_process else ""
    return f"""{master}worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def wxgate_config(port, upstream_port, threads=None, extra=""):
    """wxgate in front of the bench upstream, which also answers as WeChat."""
    threads = f"threads = {threads}\n" if threads else ""
    return f"""[server]
listen = "127.0.0.1:{port}"
{threads}[upstream]
url = "http://127.0.0.1:{upstream_port}"
[wechat]
appid = "wxbench00000000"
secret = "bench"
api_base = "http://127.0.0.1:{upstream_port}"
[admin]
listen = "127.0.0.1:0"
# Every bench client is 127.0.0.1: lift the per-IP login limit, which would
# otherwise turn the login-path and session-creation loads into 429s.
[login]
rate = 1000000
burst = 1000000
{extra}"""
