package session

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
)

// ChannelBinding is the TLS channel-binding data of a connection, for
// SASL mechanisms that bind the authentication to the TLS channel (the
// SCRAM -PLUS variants).
type ChannelBinding struct {
	// Exporter is tls-exporter (RFC 9266): 32 octets exported with the
	// label "EXPORTER-Channel-Binding" and no context; nil when the
	// connection cannot export them safely (TLS 1.2 without the extended
	// master secret).
	Exporter []byte
	// ServerEndPoint is tls-server-end-point (RFC 5929 section 4.1): the
	// hash of the server's certificate; nil when unknown.
	ServerEndPoint []byte
}

// ChannelBinder is implemented by sessions that use channel binding. The
// engine calls SetChannelBinding once a TLS handshake completed, before it
// hands the session any line that arrived over TLS.
type ChannelBinder interface {
	SetChannelBinding(ChannelBinding)
}

// ChannelBindingOf makes the channel binding of a server connection in
// state st that presented the certificate cert (its leaf, DER; nil when
// unknown).
func ChannelBindingOf(st tls.ConnectionState, cert []byte) ChannelBinding {
	var cb ChannelBinding
	if b, err := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err == nil {
		cb.Exporter = b
	}
	if len(cert) > 0 {
		cb.ServerEndPoint = ServerEndPoint(cert)
	}
	return cb
}

// ServerEndPoint hashes a DER certificate as tls-server-end-point asks
// (RFC 5929 section 4.1): with its signature's hash, SHA-256 when that is
// MD5 or SHA-1 or has none (Ed25519).
func ServerEndPoint(der []byte) []byte {
	h := crypto.SHA256
	if c, err := x509.ParseCertificate(der); err == nil {
		switch c.SignatureAlgorithm {
		case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
			h = crypto.SHA384
		case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
			h = crypto.SHA512
		}
	}
	w := h.New()
	w.Write(der)
	return w.Sum(nil)
}

// ServerCertificate returns the leaf certificate (DER) that cfg serves to
// the client of the server connection in state st, for
// tls-server-end-point; nil when it cannot tell.
func ServerCertificate(cfg *tls.Config, st tls.ConnectionState) []byte {
	if cfg == nil {
		return nil
	}
	hello := &tls.ClientHelloInfo{ServerName: st.ServerName}
	if cfg.GetConfigForClient != nil {
		if c, err := cfg.GetConfigForClient(hello); err == nil && c != nil {
			cfg = c
		}
	}
	var cert *tls.Certificate
	switch {
	case cfg.GetCertificate != nil:
		cert, _ = cfg.GetCertificate(hello)
	case len(cfg.Certificates) > 0:
		cert = &cfg.Certificates[0]
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	return cert.Certificate[0]
}
