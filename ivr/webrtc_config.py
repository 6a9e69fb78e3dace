"""http.conf and its TLS certificate: Asterisk's own HTTP server, there only for the softphone.

The agent desk's softphone speaks SIP over a secure WebSocket (RFC 7118) to
`wss://<host>:<sip.https_port>/ws`, which res_http_websocket serves on Asterisk's HTTP
server (docs.asterisk.org, "Configuring Asterisk for WebRTC Clients"). Browsers refuse a
plain ws:// from a page that is itself secure, and getUserMedia needs a secure context, so
the server is TLS only: plain HTTP stays on loopback (Asterisk's HTTP server has no way to
run TLS without its plain listener), the status page and static files are off, and ARI is
off (dialplans/ari.conf), so /ws is all that a browser can reach.

Asterisk runs chrooted in the debootstrap root, so the certificate a site names
(`sip.tls_cert`, `sip.tls_key`, host paths) is copied into the root's /etc/asterisk/keys;
the key readable by root and the asterisk group only. Without one, a self-signed pair for
127.0.0.1 and localhost is made once with the openssl CLI and kept (the demo's browsers
are told to accept it).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from core.sip_settings import SipSettings
from ivr.errors import AsteriskConfigError

logger = logging.getLogger(__name__)

HTTP_FILE: Final = "http.conf"
KEYS_DIR: Final = "keys"  # under /etc/asterisk in the root
CERT_FILE: Final = "hotline-wss.crt"
KEY_FILE: Final = "hotline-wss.key"
SELF_SIGNED_CERT: Final = "hotline-selfsigned.crt"
SELF_SIGNED_KEY: Final = "hotline-selfsigned.key"
WEBSOCKET_PATH: Final = "/ws"  # res_http_websocket's URI for res_pjsip_transport_websocket
# The plain listener Asterisk's HTTP server always opens: loopback, on a port of its own
# just below the TLS one, so it never takes the well-known 8088 from another Asterisk.
_SELF_SIGNED_DAYS: Final = 825
_OPENSSL_TIMEOUT_S: Final = 60.0


def plain_port(sip: SipSettings) -> int:
    return sip.https_port - 1 if sip.https_port > 1024 else sip.https_port + 1


def render_http(sip: SipSettings, etc_in_root: str) -> str:
    """http.conf for Asterisk's HTTP server: TLS on https_bind:https_port, the rest off."""
    bind = f"[{sip.https_bind}]" if ":" in sip.https_bind else sip.https_bind
    keys = f"{etc_in_root}/{KEYS_DIR}"
    lines = [
        "; Written by `hotline asterisk up` from the settings; do not edit.",
        "[general]",
        f"enabled = {'yes' if sip.webrtc else 'no'}",
        "servername = hotline",
        "; Plain HTTP: loopback only (the server cannot run TLS without it).",
        "bindaddr = 127.0.0.1",
        f"bindport = {plain_port(sip)}",
        "enablestatic = no",
        "enable_status = no",
        f"tlsenable = {'yes' if sip.webrtc else 'no'}",
        f"tlsbindaddr = {bind}:{sip.https_port}",
        f"tlscertfile = {keys}/{CERT_FILE}",
        f"tlsprivatekey = {keys}/{KEY_FILE}",
    ]
    return "\n".join(lines) + "\n"


def install_tls(sip: SipSettings, etc: Path, group_id: int) -> None:
    """Put the certificate and key the HTTP server reads into `etc`/keys (host path of the
    root's /etc/asterisk/keys): the site's, or the demo's self-signed pair (made once)."""
    keys = etc / KEYS_DIR
    keys.mkdir(mode=0o755, exist_ok=True)
    if sip.tls_cert is not None and sip.tls_key is not None:
        cert, key = sip.tls_cert.expanduser(), sip.tls_key.expanduser()
        for path in (cert, key):
            if not path.is_file():
                raise AsteriskConfigError(f"sip.tls_cert/tls_key: {path} is no readable file")
    else:
        cert, key = keys / SELF_SIGNED_CERT, keys / SELF_SIGNED_KEY
        if not (cert.is_file() and key.is_file()):
            _make_self_signed(keys, group_id)
    _copy(cert, keys / CERT_FILE, group_id, mode=0o644)
    _copy(key, keys / KEY_FILE, group_id, mode=0o640)


def _make_self_signed(keys: Path, group_id: int) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise AsteriskConfigError("openssl is missing: `make run` installs it, or set sip.tls_cert and sip.tls_key")
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-days",
        str(_SELF_SIGNED_DAYS),
        "-subj",
        "/CN=hotline softphone (self-signed demo)",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ]
    # Made in a directory only root can enter, then moved: the key is never world-readable.
    with tempfile.TemporaryDirectory(dir=keys, prefix=".selfsigned.") as work:
        done = subprocess.run(
            command, cwd=work, capture_output=True, text=True, timeout=_OPENSSL_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise AsteriskConfigError(f"openssl could not make the self-signed certificate: {done.stderr.strip()}")
        os.chown(Path(work, "key.pem"), 0, group_id)
        os.chmod(Path(work, "key.pem"), 0o640)
        os.chmod(Path(work, "cert.pem"), 0o644)
        os.replace(Path(work, "key.pem"), keys / SELF_SIGNED_KEY)
        os.replace(Path(work, "cert.pem"), keys / SELF_SIGNED_CERT)
    logger.info("made a self-signed certificate for the softphone's WSS (127.0.0.1, localhost) in %s", keys)


def _copy(source: Path, target: Path, group_id: int, *, mode: int) -> None:
    if source.resolve() == target.resolve():
        return
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        # Owner and mode before the bytes: a key is never readable by others, not even briefly.
        os.chown(temp, 0, group_id)
        os.chmod(temp, mode)
        with source.open("rb") as src, open(temp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
