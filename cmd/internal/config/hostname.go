package config

import "os"

// HostName is the name the service gives itself: smtp.hostname, else the
// system's host name, else "localhost". It appears in the SMTP greeting
// and Received headers, APOP and CRAM-MD5 timestamps and NTLM challenges.
func (c *Config) HostName() string {
	if c.SMTP.Hostname != "" {
		return c.SMTP.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
