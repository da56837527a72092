# A SCRAM-SHA-256 client (RFC 5802, RFC 7677) on Python's poplib, hashlib
# and hmac, for the SCRAM tests of pop3d.
#
#   scram_client.py HOST PORT USER PASSWORD MODE
#
# MODE: plain (SCRAM-SHA-256 on a plaintext link), tls (SCRAM-SHA-256-PLUS
# with tls-server-end-point over implicit TLS), stls (the same after STLS),
# tls-badcb (channel-binding data of another connection).
# Prints "SASL <mechanisms>", then "OK <reply>" and "STAT <n> <octets>"
# after a login, or "ERR <reply>" when the server refused it. Exits 1 when
# the server's signature is wrong.
import base64, hashlib, hmac, os, poplib, ssl, sys

host, port, user, password, mode = sys.argv[1:6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # pop3d's self-signed certificate
if mode in ("tls", "tls-badcb"):
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=20)
else:
    p = poplib.POP3(host, int(port), timeout=20)
    if mode == "stls":
        p.stls(context=ctx)
print("SASL", " ".join(p.capa().get("SASL", [])))

if mode == "plain":
    mech, gs2, cbdata = "SCRAM-SHA-256", "n,,", b""
else:
    # tls-server-end-point (RFC 5929 section 4.1): the certificate's hash
    # with its signature's hash, SHA-256 for pop3d's ECDSA-SHA256 certificate.
    mech, gs2 = "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,"
    cbdata = hashlib.sha256(p.sock.getpeercert(binary_form=True)).digest()
    if mode == "tls-badcb":
        cbdata = bytes(len(cbdata))

def b64(b):
    return base64.b64encode(b).decode()

nonce = b64(os.urandom(18))
first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
try:
    resp = p._shortcmd("AUTH %s %s" % (mech, b64((gs2 + first_bare).encode())))
    server_first = base64.b64decode(resp[2:]).decode()
    attrs = dict(f.split("=", 1) for f in server_first.split(","))
    if not attrs["r"].startswith(nonce) or int(attrs["i"]) < 4096:
        print("BAD SERVER-FIRST", server_first)
        sys.exit(1)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = "c=%s,r=%s" % (b64(gs2.encode() + cbdata), attrs["r"])
    auth_message = ",".join([first_bare, server_first, without_proof]).encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    resp = p._shortcmd(b64((without_proof + ",p=" + b64(proof)).encode()))
    server_final = base64.b64decode(resp[2:]).decode()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    if server_final != "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest()):
        print("SERVER SIGNATURE MISMATCH", server_final)
        sys.exit(1)
    resp = p._shortcmd("")
except poplib.error_proto as e:
    print("ERR", e.args[0].decode())
    sys.exit(0)
print("OK", resp.decode())
print("STAT %d %d" % p.stat())
p.quit()
