package main

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// fakeVenv makes DIR/venv with bin/python the given shell script and returns the venv's path.
func fakeVenv(t *testing.T, dir, python string) string {
	t.Helper()
	venv := filepath.Join(dir, "venv")
	writeFile(t, filepath.Join(venv, "bin", "python"), python, 0o755)
	return venv
}

func TestResolveVirtualenv(t *testing.T) {
	tmp := t.TempDir()
	venv := fakeVenv(t, tmp, "#!/bin/sh\n")
	project := filepath.Join(tmp, "project")
	pack := filepath.Join(tmp, "pack")

	for _, tc := range []struct{ name, option, root string }{
		{"relative to the root", "venv", tmp},
		{"relative with ..", "../venv", pack},
		{"absolute", venv, project},
	} {
		got, err := resolveVirtualenv(map[string]any{"virtualenv": tc.option}, tc.root)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		} else if got != venv {
			t.Errorf("%s: virtualenv %q from root %s = %s, want %s", tc.name, tc.option, tc.root, got, venv)
		}
	}

	failures := []struct {
		name    string
		options map[string]any
		root    string
		want    []string
	}{
		{"no option", map[string]any{"toolchain": "pip"}, project, []string{project, "virtualenv", "make venv"}},
		{"no options at all", nil, project, []string{project, "virtualenv", "make venv"}},
		{"no such directory", map[string]any{"virtualenv": "venv"}, project,
			[]string{filepath.Join(project, "venv") + " does not exist", "make venv"}},
		{"no bin/python", map[string]any{"virtualenv": tmp}, project,
			[]string{filepath.Join(tmp, "bin", "python"), "make venv"}},
		{"not a string", map[string]any{"virtualenv": true}, project, []string{"must be a path"}},
	}
	for _, tc := range failures {
		_, err := resolveVirtualenv(tc.options, tc.root)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, want)
			}
		}
	}
}

// sitePackages writes pulumi-plugin.json files under venv/lib/pythonX/site-packages/PKG.
func sitePackages(t *testing.T, venv string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		writeFile(t, filepath.Join(venv, "lib", rel), content, 0o644)
	}
}

func TestVenvPluginsListsTheResourcePluginsOfTheVenv(t *testing.T) {
	venv := fakeVenv(t, t.TempDir(), "#!/bin/sh\n")
	sitePackages(t, venv, map[string]string{
		"python3.11/site-packages/pulumi_kubernetes/pulumi-plugin.json": `{"resource": true, "name": "kubernetes", "version": "4.34.2"}`,
		"python3.11/site-packages/pulumi_policy/pulumi-plugin.json":     `{ "resource": false }`,
		"python3.11/site-packages/pulumi_random/pulumi-plugin.json":     `{"resource": true, "name": "random", "version": "4.21.4"}`,
		"python3.11/site-packages/requests/__init__.py":                 ``,
		"python3.12/site-packages/pulumi_tls/pulumi-plugin.json": `{"resource": true, "name": "tls", "version": "5.6.2",
			"server": "https://plugins.invalid/tls"}`,
		// the same package in a second interpreter's site-packages is listed once
		"python3.12/site-packages/pulumi_kubernetes/pulumi-plugin.json": `{"resource": true, "name": "kubernetes", "version": "4.34.2"}`,
		// not in site-packages: not a package of the venv
		"python3.11/pulumi_stray/pulumi-plugin.json": `{"resource": true, "name": "stray", "version": "1.0.0"}`,
	})
	got, err := venvPlugins(venv)
	if err != nil {
		t.Fatal(err)
	}
	want := []venvPlugin{
		{Resource: true, Name: "kubernetes", Version: "4.34.2"},
		{Resource: true, Name: "random", Version: "4.21.4"},
		{Resource: true, Name: "tls", Version: "5.6.2", Server: "https://plugins.invalid/tls"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("venvPlugins = %+v\nwant %+v", got, want)
	}

	// Both RPCs report them as resource plugins, resolving the venv from the request.
	h := newHost(options{})
	info := &pulumirpc.ProgramInfo{
		RootDirectory: filepath.Dir(venv), ProgramDirectory: filepath.Dir(venv), EntryPoint: ".",
		Options: runtimeOptions(t, "venv"),
	}
	packages, err := h.GetRequiredPackages(context.Background(), &pulumirpc.GetRequiredPackagesRequest{Info: info})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range packages.GetPackages() {
		names = append(names, p.GetKind()+":"+p.GetName()+"@"+p.GetVersion()+p.GetServer())
	}
	wantNames := []string{"resource:kubernetes@4.34.2", "resource:random@4.21.4",
		"resource:tls@5.6.2https://plugins.invalid/tls"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("GetRequiredPackages = %q, want %q", names, wantNames)
	}
	plugins, err := h.GetRequiredPlugins(context.Background(), &pulumirpc.GetRequiredPluginsRequest{Info: info})
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, p := range plugins.GetPlugins() {
		names = append(names, p.GetKind()+":"+p.GetName()+"@"+p.GetVersion()+p.GetServer())
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("GetRequiredPlugins = %q, want %q", names, wantNames)
	}

	// A missing venv is an error naming it, not an empty list.
	info.Options = runtimeOptions(t, "missing-venv")
	if _, err := h.GetRequiredPackages(context.Background(), &pulumirpc.GetRequiredPackagesRequest{Info: info}); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(filepath.Dir(venv), "missing-venv")) {
		t.Errorf("GetRequiredPackages with a missing venv: error %v, want one naming it", err)
	}
}

func TestVenvPluginsRejectsABrokenPluginFile(t *testing.T) {
	venv := fakeVenv(t, t.TempDir(), "#!/bin/sh\n")
	sitePackages(t, venv, map[string]string{"python3.11/site-packages/pulumi_x/pulumi-plugin.json": `{"resource": tr`})
	_, err := venvPlugins(venv)
	if err == nil || !strings.Contains(err.Error(), "pulumi_x/pulumi-plugin.json") {
		t.Errorf("error %v, want one naming the broken file", err)
	}
}

func TestVenvEnvActivatesTheVenv(t *testing.T) {
	base := []string{"PATH=/usr/bin:/bin", "PYTHONHOME=/elsewhere", "VIRTUAL_ENV=/old/venv", "KEEP=1",
		"PULUMI_CONFIG={}"}
	got := venvEnv(base, "/v", map[string]string{"PULUMI_CONFIG": `{"a:b":"c"}`})
	want := []string{"KEEP=1", "PATH=/v/bin:/usr/bin:/bin", `PULUMI_CONFIG={"a:b":"c"}`, "VIRTUAL_ENV=/v"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("venvEnv = %q\nwant %q", got, want)
	}
	if got := venvEnv(nil, "/v", nil); !reflect.DeepEqual(got, []string{"PATH=/v/bin", "VIRTUAL_ENV=/v"}) {
		t.Errorf("venvEnv without PATH = %q", got)
	}
}

// Handshake's root directory stands in for a request that carries none (an engine attaching to the host).
func TestHandshakeRootResolvesARelativeVenv(t *testing.T) {
	venv := fakeVenv(t, t.TempDir(), "#!/bin/sh\n")
	sitePackages(t, venv, map[string]string{
		"python3.11/site-packages/pulumi_random/pulumi-plugin.json": `{"resource": true, "name": "random", "version": "4.21.4"}`,
	})
	h := newHost(options{})
	root := filepath.Dir(venv)
	if _, err := h.Handshake(context.Background(), &pulumirpc.LanguageHandshakeRequest{
		EngineAddress: "127.0.0.1:3", RootDirectory: &root, ProgramDirectory: &root,
	}); err != nil {
		t.Fatal(err)
	}
	if got := h.engineAddress(); got != "127.0.0.1:3" {
		t.Errorf("engine address after Handshake %q, want 127.0.0.1:3", got)
	}
	resp, err := h.GetRequiredPackages(context.Background(), &pulumirpc.GetRequiredPackagesRequest{
		Info: &pulumirpc.ProgramInfo{EntryPoint: ".", Options: runtimeOptions(t, "venv")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetPackages()) != 1 || resp.GetPackages()[0].GetName() != "random" {
		t.Errorf("GetRequiredPackages = %v, want the random plugin of %s", resp.GetPackages(), venv)
	}
}
