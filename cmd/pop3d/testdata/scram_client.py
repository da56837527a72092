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
import base64, os, poplib, ssl, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scram

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
    mech, gs2 = "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,"
    cbdata = scram.tls_server_end_point(p.sock.getpeercert(binary_form=True))
    if mode == "tls-badcb":
        cbdata = bytes(len(cbdata))

try:
    scram.login(
        lambda m: base64.b64decode(p._shortcmd("AUTH %s %s" % (mech, m))[2:]).decode(),
        lambda m: base64.b64decode(p._shortcmd(m)[2:]).decode(),
        user, password, gs2, cbdata)
    resp = p._shortcmd("")
except scram.BadServer as e:
    print(e)
    sys.exit(1)
except poplib.error_proto as e:
    print("ERR", e.args[0].decode())
    sys.exit(0)
print("OK", resp.decode())
print("STAT %d %d" % p.stat())
p.quit()
