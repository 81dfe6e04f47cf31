package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tlsready/tlsready/store"
)

// deployDir is the repository's deploy/ directory.
const deployDir = "../../deploy"

// checkCLIArgs parses a command line from a deployment file (without the
// program name) with tlsready's own commands and flags: an unknown command
// or flag, a bad value or a wrong number of arguments fails the test.
func checkCLIArgs(t *testing.T, where string, args []string) {
	t.Helper()
	root := newRootCmd()
	c, rest, err := root.Find(args)
	if err != nil || c == root {
		t.Errorf("%s: %q is no tlsready command: %v", where, args, err)
		return
	}
	if err := c.ParseFlags(rest); err != nil {
		t.Errorf("%s: %s: %v", where, c.CommandPath(), err)
		return
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		t.Errorf("%s: %s: %v", where, c.CommandPath(), err)
	}
}

// flagValue returns the value of --name in args ("" when absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// unitFile is a systemd unit's settings: "Section.Key" -> values in order,
// continuation lines joined.
type unitFile map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section, pending := "", ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			pending += l + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: not a setting: %q", path, line)
			continue
		}
		u[section+"."+k] = append(u[section+"."+k], strings.TrimSpace(v))
	}
	return u
}

func (u unitFile) get(key string) string {
	v := u[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestDeploySystemdUnits checks deploy/systemd: the hardening the units
// promise, ExecStart parsed by tlsready's own flags, the database directory
// writable, and `systemd-analyze verify` without a warning (skipped, with a
// message, where systemd-analyze is not installed, in CI too).
func TestDeploySystemdUnits(t *testing.T) {
	dir := filepath.Join(deployDir, "systemd")
	units, err := filepath.Glob(filepath.Join(dir, "*.service"))
	if err != nil || len(units) == 0 {
		t.Fatalf("no units in %s: %v", dir, err)
	}
	timers, _ := filepath.Glob(filepath.Join(dir, "*.timer"))
	dropIns, _ := filepath.Glob(filepath.Join(dir, "*.service.d", "*.conf"))
	for _, path := range dropIns {
		u := parseUnit(t, path)
		name := filepath.Join(filepath.Base(filepath.Dir(path)), filepath.Base(path))
		if _, err := os.Stat(strings.TrimSuffix(filepath.Dir(path), ".d")); err != nil {
			t.Errorf("%s: a drop-in for a unit that is not there", name)
		}
		if e := u["Service.ExecStart"]; len(e) > 0 {
			exec := strings.Fields(e[len(e)-1])
			if len(e) < 2 || e[0] != "" || len(exec) < 2 || exec[0] != "/usr/local/bin/tlsready" {
				t.Errorf("%s: ExecStart must be cleared, then set to tlsready: %q", name, e)
				continue
			}
			checkCLIArgs(t, name, exec[1:])
			if db := flagValue(exec, "--db"); store.RedactURL(db) != db {
				t.Errorf("%s: --db carries a password", name)
			}
		}
	}
	for _, path := range units {
		u := parseUnit(t, path)
		name := filepath.Base(path)
		for key, want := range map[string]string{
			"Service.ProtectSystem":   "strict",
			"Service.PrivateTmp":      "yes",
			"Service.NoNewPrivileges": "yes",
			"Service.ProtectHome":     "yes",
			"Service.User":            "tlsready",
		} {
			if got := u.get(key); got != want {
				t.Errorf("%s: %s=%q, want %q", name, key, got, want)
			}
		}
		exec := strings.Fields(u.get("Service.ExecStart"))
		if len(exec) < 2 || exec[0] != "/usr/local/bin/tlsready" {
			t.Errorf("%s: ExecStart %q", name, exec)
			continue
		}
		checkCLIArgs(t, name, exec[1:])
		rw := strings.Fields(strings.Join(u["Service.ReadWritePaths"], " "))
		for _, f := range []string{"--db", "--summary-json"} {
			if p := flagValue(exec, f); p != "" && !slices.Contains(rw, filepath.Dir(p)) {
				t.Errorf("%s: %s %s is not under ReadWritePaths %q", name, f, p, rw)
			}
		}
	}
	for _, path := range timers {
		svc := strings.TrimSuffix(path, ".timer") + ".service"
		if _, err := os.Stat(svc); err != nil {
			t.Errorf("%s: no %s to start", filepath.Base(path), filepath.Base(svc))
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: deploy/systemd not verified by systemd (the checks above ran)")
	}
	// verify wants ExecStart's program to exist: point it at this test
	// binary (only its existence is checked) in a copy of the units.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var files []string
	for _, path := range slices.Concat(units, timers, dropIns) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/tlsready"), []byte(exe))
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(dropIns, path) { // read with their unit
			files = append(files, dst)
		}
	}
	cmd := exec.CommandContext(t.Context(), analyze, append([]string{"verify", "--man=no"}, files...)...)
	out, err := cmd.CombinedOutput()
	var warnings []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "tlsready") {
			warnings = append(warnings, line)
		} else if line != "" {
			t.Logf("systemd-analyze: %s", line) // the environment, not our units
		}
	}
	if err != nil || len(warnings) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, strings.Join(warnings, "\n"))
	}
}

// k8sObject is one YAML document of deploy/kubernetes.
type k8sObject = map[string]any

// at walks maps by key; nil when a key is missing or not a map.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func readK8s(t *testing.T, path string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestDeployKubernetes parses deploy/kubernetes/*.yaml and checks what can
// be checked without a cluster: kinds, selectors matching the pod labels,
// every container's args (with $(VAR) defined in its env) parsed by
// tlsready's own flags, a --db without a password and PGPASSWORD from a
// Secret, probes on the --ops-listen port, mounts of declared volumes, the
// security context; an .example. file says it is an example. Not the
// Kubernetes API schema (no kubectl or kubeconform here).
func TestDeployKubernetes(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in deploy/kubernetes: %v", err)
	}
	kinds := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		objs := readK8s(t, path)
		if len(objs) == 0 {
			t.Errorf("%s: no objects", name)
		}
		example := strings.Contains(name, ".example.")
		if b, _ := os.ReadFile(path); example != bytes.HasPrefix(b, []byte("# EXAMPLE ONLY")) {
			t.Errorf("%s: an .example. file, and only one, starts with \"# EXAMPLE ONLY\"", name)
		}
		for i, o := range objs {
			where := fmt.Sprintf("%s[%d]", name, i)
			kind, api := str(o["kind"]), str(o["apiVersion"])
			kinds[kind] = true
			if str(at(o, "metadata", "name")) == "" || str(at(o, "metadata", "namespace")) == "" {
				t.Errorf("%s: metadata.name and namespace required", where)
			}
			if example && !strings.HasPrefix(str(at(o, "metadata", "annotations", "tlsready.example/status")), "example only") {
				t.Errorf("%s: no tlsready.example/status annotation saying it is an example", where)
			}
			var tmpl any
			switch kind + " " + api {
			case "DaemonSet apps/v1", "Deployment apps/v1":
				tmpl = at(o, "spec", "template")
				sel, _ := at(o, "spec", "selector", "matchLabels").(map[string]any)
				labels, _ := at(tmpl, "metadata", "labels").(map[string]any)
				if len(sel) == 0 {
					t.Errorf("%s: no spec.selector.matchLabels", where)
				}
				for k, v := range sel {
					if labels[k] != v {
						t.Errorf("%s: selector %s=%v does not match the pod labels", where, k, v)
					}
				}
			case "Job batch/v1":
				tmpl = at(o, "spec", "template")
				if str(at(o, "spec", "completionMode")) == "Indexed" && at(o, "spec", "completions") != at(o, "spec", "parallelism") {
					t.Errorf("%s: an Indexed Job of workers has completions = parallelism", where)
				}
			case "CronJob batch/v1":
				tmpl = at(o, "spec", "jobTemplate", "spec", "template")
				if str(at(o, "spec", "concurrencyPolicy")) != "Forbid" {
					t.Errorf("%s: concurrencyPolicy must be Forbid (one scan per database)", where)
				}
			default:
				t.Errorf("%s: unexpected %s %s", where, api, kind)
				continue
			}
			checkPodSpec(t, where, kind, at(tmpl, "spec"))
		}
	}
	for _, k := range []string{"DaemonSet", "CronJob", "Job"} {
		if !kinds[k] {
			t.Errorf("deploy/kubernetes has no %s", k)
		}
	}
}

func checkPodSpec(t *testing.T, where, kind string, spec any) {
	t.Helper()
	if spec == nil {
		t.Errorf("%s: no pod template spec", where)
		return
	}
	if kind != "DaemonSet" && kind != "Deployment" {
		if rp := str(at(spec, "restartPolicy")); rp != "Never" && rp != "OnFailure" {
			t.Errorf("%s: restartPolicy %q for a Job", where, rp)
		}
	}
	if at(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: securityContext.runAsNonRoot is not true", where)
	}
	volumes := map[string]bool{}
	for _, v := range list(at(spec, "volumes")) {
		volumes[str(at(v, "name"))] = true
	}
	containers := list(at(spec, "containers"))
	if len(containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	for _, c := range containers {
		cname := str(at(c, "name"))
		cw := where + " container " + cname
		if cname == "" || str(at(c, "image")) == "" {
			t.Errorf("%s: name and image required", cw)
		}
		env := map[string]string{}
		for _, e := range list(at(c, "env")) {
			n := str(at(e, "name"))
			env[n] = "10.0.0.1" // a sample value for $(VAR)
			if ref := at(e, "valueFrom", "secretKeyRef"); ref != nil && (str(at(ref, "name")) == "" || str(at(ref, "key")) == "") {
				t.Errorf("%s: env %s: secretKeyRef needs name and key", cw, n)
			}
		}
		var args []string
		for _, a := range list(at(c, "args")) {
			s, ok := a.(string)
			if !ok {
				t.Errorf("%s: arg %v is not a string", cw, a)
			}
			s = k8sVarRef.ReplaceAllStringFunc(s, func(ref string) string {
				v, ok := env[k8sVarRef.FindStringSubmatch(ref)[1]]
				if !ok {
					t.Errorf("%s: %s is not in the container's env", cw, ref)
				}
				return v
			})
			args = append(args, s)
		}
		checkCLIArgs(t, cw, args)
		if db := flagValue(args, "--db"); db != "" {
			if store.RedactURL(db) != db {
				t.Errorf("%s: --db carries a password: use PGPASSWORD from a Secret", cw)
			}
			if _, ok := env["PGPASSWORD"]; store.IsPostgresURL(db) && !ok {
				t.Errorf("%s: a PostgreSQL --db without PGPASSWORD in env", cw)
			}
		}
		ports := map[string]string{}
		for _, p := range list(at(c, "ports")) {
			ports[str(at(p, "name"))] = fmt.Sprint(at(p, "containerPort"))
		}
		for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
			get := at(c, probe, "httpGet")
			if get == nil {
				continue
			}
			port := fmt.Sprint(at(get, "port"))
			if n, ok := ports[port]; ok {
				port = n
			}
			ops := flagValue(args, "--ops-listen")
			if str(at(get, "path")) != "/healthz" || ops == "" || !strings.HasSuffix(ops, ":"+port) {
				t.Errorf("%s: %s GET %v port %s: want /healthz on the --ops-listen port (%q)", cw, probe, at(get, "path"), port, ops)
			}
		}
		for _, m := range list(at(c, "volumeMounts")) {
			if !volumes[str(at(m, "name"))] {
				t.Errorf("%s: mounts %q, not a volume of the pod", cw, str(at(m, "name")))
			}
		}
		sc := at(c, "securityContext")
		if at(sc, "allowPrivilegeEscalation") != false || at(sc, "readOnlyRootFilesystem") != true ||
			!slices.Contains(list(at(sc, "capabilities", "drop")), any("ALL")) {
			t.Errorf("%s: securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", cw)
		}
	}
}
