package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// resolveVirtualenv returns the absolute virtualenv that the runtime options name (`virtualenv`, relative to
// root), after checking that it has bin/python. The host never falls back to a python on PATH: a program run
// outside its virtualenv would see other package versions than the ones its plugins were installed for.
func resolveVirtualenv(runtimeOptions map[string]any, root string) (string, error) {
	raw, ok := runtimeOptions["virtualenv"]
	if !ok || raw == nil || raw == "" {
		return "", fmt.Errorf("the project in %s sets no virtualenv (runtime.options.virtualenv in Pulumi.yaml "+
			"or PulumiPolicy.yaml): this language host runs Python only in a virtualenv; create one "+
			"(e.g. `make venv`) and name it there", root)
	}
	venv, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("runtime option virtualenv must be a path, not %v", raw)
	}
	if !filepath.IsAbs(venv) {
		venv = filepath.Join(root, venv)
	}
	venv, err := filepath.Abs(venv)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(venv); err != nil {
		return "", fmt.Errorf("the virtualenv %s does not exist: create it (e.g. `make venv`)", venv)
	}
	python := filepath.Join(venv, "bin", "python")
	if info, err := os.Stat(python); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("the virtualenv %s has no executable %s: create it again (e.g. `make venv`)",
			venv, python)
	}
	return venv, nil
}

// venvPlugin is a pulumi-plugin.json that a Pulumi package installs into site-packages.
type venvPlugin struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server,omitempty"`
}

// venvPlugins lists the resource plugins of the packages installed in the virtualenv, sorted by name. Packages
// that are not providers (pulumi-policy: "resource": false) are left out.
func venvPlugins(venv string) ([]venvPlugin, error) {
	files, err := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "*", "pulumi-plugin.json"))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var plugins []venvPlugin
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var p venvPlugin
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		if !p.Resource {
			continue
		}
		if p.Name == "" {
			return nil, fmt.Errorf("%s names no plugin", file)
		}
		if key := p.Name + "@" + p.Version; !seen[key] {
			seen[key] = true
			plugins = append(plugins, p)
		}
	}
	sort.Slice(plugins, func(i, j int) bool {
		if plugins[i].Name != plugins[j].Name {
			return plugins[i].Name < plugins[j].Name
		}
		return plugins[i].Version < plugins[j].Version
	})
	return plugins, nil
}

// venvEnv is base with the virtualenv activated, as its bin/activate would (VIRTUAL_ENV, bin first on PATH, no
// PYTHONHOME), and with the extra variables set over any of the same name.
func venvEnv(base []string, venv string, extra map[string]string) []string {
	set := map[string]string{"VIRTUAL_ENV": venv}
	for k, v := range extra {
		set[k] = v
	}
	path := filepath.Join(venv, "bin")
	env := make([]string, 0, len(base)+len(set)+1)
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		if _, replaced := set[k]; replaced || k == "PYTHONHOME" {
			continue
		}
		if k == "PATH" {
			if v != "" {
				path += string(os.PathListSeparator) + v
			}
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+path)
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+set[k])
	}
	return env
}
