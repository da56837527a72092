package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
)

// ReloadTimeout bounds the request that tells the running service to
// reread its configuration after set.
const ReloadTimeout = 2 * time.Second

// ReloadPath is the admin API endpoint that makes pop3d reread its file.
const ReloadPath = "/api/reload"

func (c *cli) get() error {
	if err := c.wantArgs(0, 1, "[KEY]"); err != nil {
		return err
	}
	cfg, path, err := c.loadConfig()
	if err != nil {
		return err
	}
	if len(c.args) == 1 {
		v, err := config.Get(cfg, c.args[0])
		if err != nil {
			return err
		}
		c.say(map[string]any{"key": c.args[0], "value": v}, "%s", v)
		return nil
	}
	kv := config.List(cfg)
	if c.json {
		c.emitJSON(map[string]any{"file": path, "settings": kv})
		return nil
	}
	rows := make([][]string, len(kv))
	for i, e := range kv {
		rows[i] = []string{e.Key, e.Value}
	}
	c.table([]string{"KEY", "VALUE"}, rows)
	return nil
}

func (c *cli) set() error {
	if err := c.wantArgs(2, 2, "KEY VALUE"); err != nil {
		return err
	}
	path, err := config.Resolve(c.configPath)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if path == "" {
		// No file yet: the embedded defaults are in use; start ./pop3d.toml,
		// which pop3d reads at its next start.
		path = config.DefaultFile
	}
	if k, err := config.CanonicalKey(c.args[0]); err == nil && k == "auth.method" && !c.force {
		if err := c.checkMethodSwitch(path, config.NormalizeAuthMethod(c.args[1])); err != nil {
			return err
		}
	}
	if err := config.Set(path, c.args[0], c.args[1]); err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	value, err := config.Get(cfg, c.args[0])
	if err != nil {
		return err
	}
	told, why := reload(cfg.Admin.Listen)
	if c.json {
		v := map[string]any{"key": c.args[0], "value": value, "file": path, "reloaded": told}
		if !told {
			v["reload_error"] = why
		}
		c.emitJSON(v)
		return nil
	}
	fmt.Fprintf(c.stdout, "Set %s = %s in %s.\n", c.args[0], value, path)
	if told {
		fmt.Fprintln(c.stdout, "The running service was told and reloaded its configuration.")
	} else {
		fmt.Fprintf(c.stdout, "The running service was not told (%s); it applies the change at its next start or SIGHUP.\n", why)
	}
	return nil
}

// reload asks the service listening on the admin address to reread its
// configuration. It reports whether the service accepted, or why not.
func reload(adminListen string) (bool, string) {
	if adminListen == "" {
		return false, "admin.listen is empty"
	}
	host, port, err := net.SplitHostPort(adminListen)
	if err != nil {
		return false, err.Error()
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	url := "http://" + net.JoinHostPort(host, port) + ReloadPath
	ctx, cancel := context.WithTimeout(context.Background(), ReloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, "no service answered at " + url
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return true, ""
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	line = strings.TrimSpace(line)
	if len(line) > 200 {
		line = line[:200]
	}
	if line == "" {
		return false, fmt.Sprintf("%s answered %s", url, resp.Status)
	}
	return false, fmt.Sprintf("%s answered %s: %s", url, resp.Status, line)
}
