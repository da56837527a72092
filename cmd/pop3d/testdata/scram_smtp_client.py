# A SCRAM-SHA-256 client (RFC 5802, RFC 7677) for SMTP AUTH (RFC 4954) on
# Python's smtplib, hashlib and hmac, for the submission SCRAM tests of
# pop3d. smtplib has no SCRAM: the exchange runs through docmd.
#
#   scram_smtp_client.py HOST PORT USER PASSWORD MODE
#
# MODE: plain (SCRAM-SHA-256 without TLS), stls-nobind (SCRAM-SHA-256
# after STARTTLS), stls (SCRAM-SHA-256-PLUS with tls-server-end-point
# after STARTTLS), tls (the same over implicit TLS), tls-badcb
# (channel-binding data of another connection), stls-downgrade ("y" flag:
# the client claims the server offers no -PLUS though it does).
# Prints "AUTH <mechanisms>", then "OK <code>" and "SENT" after a login and
# a message to bob@example.org, or "ERR <code> <text>" when the server
# refused the login. Exits 1 when the server's signature is wrong.
import base64, hashlib, hmac, os, smtplib, ssl, sys

host, port, user, password, mode = sys.argv[1:6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # pop3d's self-signed certificate
if mode in ("tls", "tls-badcb"):
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=20)
else:
    s = smtplib.SMTP(host, int(port), timeout=20)
s.ehlo("client.test")
if mode.startswith("stls"):
    s.starttls(context=ctx)
    s.ehlo("client.test")
print("AUTH", s.esmtp_features.get("auth", "").strip())

cbdata = b""
if mode in ("plain", "stls-nobind"):
    mech, gs2 = "SCRAM-SHA-256", "n,,"
elif mode == "stls-downgrade":
    mech, gs2 = "SCRAM-SHA-256", "y,,"
else:
    # tls-server-end-point (RFC 5929 section 4.1): the certificate's hash
    # with its signature's hash, SHA-256 for pop3d's ECDSA-SHA256 certificate.
    mech, gs2 = "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,"
    cbdata = hashlib.sha256(s.sock.getpeercert(binary_form=True)).digest()
    if mode == "tls-badcb":
        cbdata = bytes(len(cbdata))

def b64(b):
    return base64.b64encode(b).decode()

def step(code, text):
    if code != 334:
        print("ERR", code, text.decode())
        s.quit()
        sys.exit(0)
    return base64.b64decode(text).decode()

nonce = b64(os.urandom(18))
first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
server_first = step(*s.docmd("AUTH", "%s %s" % (mech, b64((gs2 + first_bare).encode()))))
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
server_final = step(*s.docmd(b64((without_proof + ",p=" + b64(proof)).encode())))
server_key = hmac.new(salted, b"Server Key", "sha256").digest()
if server_final != "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest()):
    print("SERVER SIGNATURE MISMATCH", server_final)
    sys.exit(1)
code, text = s.docmd("")
if code != 235:
    print("ERR", code, text.decode())
    sys.exit(0)
print("OK", code)
msg = "From: %s\r\nTo: bob@example.org\r\nSubject: SCRAM %s\r\n\r\nsent with %s (%s)\r\n" % (user, mode, mech, mode)
s.sendmail(user, ["bob@example.org"], msg)
print("SENT")
s.quit()
