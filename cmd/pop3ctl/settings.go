package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
)

// ReloadTimeout bounds the request that tells the running service to
// reread its configuration after set.
const ReloadTimeout = 10 * time.Second

// ReloadPath is the admin API endpoint that makes pop3d reread its file;
// StatusPath tells which file that is.
const (
	ReloadPath = "/api/reload"
	StatusPath = "/api/status"
)

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
		w, _ := config.Applies(c.args[0])
		desc, _, _ := config.Describe(c.args[0])
		c.say(map[string]any{"key": c.args[0], "value": v, "applies": w, "description": desc}, "%s", v)
		return nil
	}
	kv := config.List(cfg)
	if c.json {
		c.emitJSON(map[string]any{"file": path, "settings": kv})
		return nil
	}
	rows := make([][]string, len(kv))
	for i, e := range kv {
		rows[i] = []string{e.Key, e.Value, string(e.Applies), e.Description}
	}
	c.table([]string{"KEY", "VALUE", "APPLIES", "DESCRIPTION"}, rows)
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
	// The running service, if any, is at the admin address in force now
	// (before the change), and must be reading the file about to change.
	cur := config.Default()
	if _, err := os.Stat(path); err == nil {
		if cur, err = config.Load(path); err != nil {
			return err
		}
	}
	svc := findService(cur.Admin.Listen)
	if svc.answered {
		if svc.file == "" {
			return errors.New(config.NoFileRefusal)
		}
		if !sameFile(svc.file, path) {
			return fmt.Errorf("the running service reads %s, not %s: give -config %s", svc.file, path, svc.file)
		}
	}
	if k, err := config.CanonicalKey(c.args[0]); err == nil && k == "auth.method" && !c.force {
		if err := c.checkMethodSwitch(path, config.NormalizeAuthMethod(c.args[1])); err != nil {
			return err
		}
	}
	old, _ := config.Get(cur, c.args[0])
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
	key, _ := config.CanonicalKey(c.args[0])
	c.audit("set", key, old, value)
	var res reloadResult
	if svc.answered {
		res = reload(svc.base)
	}
	if c.json {
		v := map[string]any{"key": c.args[0], "value": value, "file": path, "reloaded": res.ok}
		switch {
		case !svc.answered:
			v["reload_error"] = "no service answered at " + svc.base
		case res.err != "":
			v["reload_error"] = res.err
		}
		if svc.answered {
			v["restart"] = res.restart
			if n := config.RestartNotice(res.restart); n != "" {
				v["restart_notice"] = n
			}
		}
		c.emitJSON(v)
		return nil
	}
	fmt.Fprintf(c.stdout, "Set %s = %s in %s.\n", c.args[0], value, path)
	switch {
	case !svc.answered:
		fmt.Fprintf(c.stdout, "No service answered at %s: the change applies when the service starts.\n", svc.base)
	case res.err != "":
		fmt.Fprintf(c.stdout, "The running service was told, and did not apply everything: %s\n", res.err)
	default:
		fmt.Fprintln(c.stdout, "The running service was told and reloaded its configuration.")
	}
	if n := config.RestartNotice(res.restart); n != "" {
		fmt.Fprintln(c.stdout, n)
	}
	return nil
}

// service is what pop3ctl learnt of the service on the admin address.
type service struct {
	base     string // http://host:port
	answered bool   // a service answered GET /api/status
	file     string // the configuration file it reads; "" for its built-in defaults
}

// findService asks the service on the admin address which configuration
// file it reads.
func findService(adminListen string) service {
	base := adminBase(adminListen)
	if base == "" {
		return service{base: "admin.listen (empty)"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ReloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+StatusPath, nil)
	if err != nil {
		return service{base: base}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return service{base: base}
	}
	defer resp.Body.Close()
	var st struct {
		ConfigFile *string `json:"config_file"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil || st.ConfigFile == nil {
		// Something else answers there: not a pop3d to tell.
		return service{base: base}
	}
	return service{base: base, answered: true, file: *st.ConfigFile}
}

// adminBase is the URL of the admin listener; "" when there is none.
func adminBase(adminListen string) string {
	if adminListen == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(adminListen)
	if err != nil {
		return ""
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// sameFile reports whether a and b name the same file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// reloadResult is the service's answer to POST /api/reload.
type reloadResult struct {
	ok      bool
	restart []string // restart keys it found changed
	err     string   // why it did not apply everything
}

// reload asks the service at base to reread its configuration.
func reload(base string) reloadResult {
	ctx, cancel := context.WithTimeout(context.Background(), ReloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+ReloadPath, nil)
	if err != nil {
		return reloadResult{err: err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reloadResult{err: "no answer from " + base + ReloadPath + ": " + err.Error()}
	}
	defer resp.Body.Close()
	var ans struct {
		OK      bool     `json:"ok"`
		Restart []string `json:"restart"`
		Error   string   `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans); err != nil {
		return reloadResult{err: fmt.Sprintf("%s%s answered %s", base, ReloadPath, resp.Status)}
	}
	r := reloadResult{ok: ans.OK && resp.StatusCode/100 == 2, restart: ans.Restart, err: ans.Error}
	if !r.ok && r.err == "" {
		r.err = fmt.Sprintf("%s%s answered %s", base, ReloadPath, resp.Status)
	}
	return r
}
