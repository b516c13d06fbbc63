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


def nginx_auth_config(workdir, port, upstream_port, wxgate_port, workers):
    """nginx auth_request asking wxgate's forward-auth route on every request,
    copying the identity, then proxying: deploy/nginx/wxgate-auth.conf's shape."""
    plain = nginx_config(workdir, port, upstream_port, workers)
    location = """        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }"""
    auth = f"""        location = /_wxgate_ask {{
            internal;
            proxy_pass http://wxgate/_wxgate/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location / {{
            auth_request /_wxgate_ask;
            auth_request_set $wx_openid $upstream_http_x_wx_openid;
            auth_request_set $wx_unionid $upstream_http_x_wx_unionid;
            auth_request_set $wx_appid $upstream_http_x_wx_appid;
            proxy_set_header X-WX-OpenId $wx_openid;
            proxy_set_header X-WX-UnionId $wx_unionid;
            proxy_set_header X-WX-AppId $wx_appid;
            proxy_set_header X-Session-Id "";
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}"""
    plain = plain.replace(location, auth)
    plain = plain.replace(f"pid {workdir}/nginx.pid;", f"pid {workdir}/nginx-auth.pid;")
    plain = plain.replace(f"error_log {workdir}/nginx-error.log", f"error_log {workdir}/nginx-auth-error.log")
    return plain.replace("    server {", f"    upstream wxgate {{ server 127.0.0.1:{wxgate_port}; keepalive 64; }}\n    server {{", 1)


def caddy_config(port, upstream_port, wxgate_port):
    """Caddy forward_auth asking wxgate's forward-auth route, then reverse_proxy."""
    return f"""{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    forward_auth 127.0.0.1:{wxgate_port} {{
        uri /_wxgate/auth
        copy_headers X-WX-OpenId X-WX-UnionId X-WX-AppId
    }}
    request_header -X-Session-Id
    reverse_proxy 127.0.0.1:{upstream_port}
}}
"""


def wxgate_config(port, upstream_port, threads=None, extra="", admin_port=0):
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
listen = "127.0.0.1:{admin_port}"
# Every bench client is 127.0.0.1: lift the per-IP login limit, which would
# otherwise turn the login-path and session-creation loads into 429s.
[login]
rate = 1000000
burst = 1000000
{extra}"""
