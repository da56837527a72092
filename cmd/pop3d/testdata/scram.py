# The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) on hashlib and hmac,
# shared by the SCRAM test clients of POP3 (scram_client.py) and SMTP
# submission (scram_smtp_client.py), which carry its messages.
import base64, hashlib, hmac, os


def b64(b):
    return base64.b64encode(b).decode()


def tls_server_end_point(der):
    # RFC 5929 section 4.1: the certificate's hash with its signature's
    # hash, SHA-256 for pop3d's ECDSA-SHA256 certificate.
    return hashlib.sha256(der).digest()


class BadServer(Exception):
    pass


def login(first, final, user, password, gs2, cbdata):
    """Runs the exchange: first(client-first, base64) returns the
    server-first message, final(client-final, base64) the server-final one.
    Raises BadServer when the server's nonce, iteration count or signature
    is wrong."""
    nonce = b64(os.urandom(18))
    first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
    server_first = first(b64((gs2 + first_bare).encode()))
    attrs = dict(f.split("=", 1) for f in server_first.split(","))
    if not attrs["r"].startswith(nonce) or int(attrs["i"]) < 4096:
        raise BadServer("BAD SERVER-FIRST " + server_first)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = "c=%s,r=%s" % (b64(gs2.encode() + cbdata), attrs["r"])
    auth_message = ",".join([first_bare, server_first, without_proof]).encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_final = final(b64((without_proof + ",p=" + b64(proof)).encode()))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    if server_final != "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest()):
        raise BadServer("SERVER SIGNATURE MISMATCH " + server_final)
