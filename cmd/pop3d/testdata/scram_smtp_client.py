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
import base64, os, smtplib, ssl, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scram

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
    mech, gs2 = "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,"
    cbdata = scram.tls_server_end_point(s.sock.getpeercert(binary_form=True))
    if mode == "tls-badcb":
        cbdata = bytes(len(cbdata))

def step(code, text):
    if code != 334:
        print("ERR", code, text.decode())
        s.quit()
        sys.exit(0)
    return base64.b64decode(text).decode()

try:
    scram.login(lambda m: step(*s.docmd("AUTH", "%s %s" % (mech, m))), lambda m: step(*s.docmd(m)),
                user, password, gs2, cbdata)
except scram.BadServer as e:
    print(e)
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
