package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// recordingPython is a fake venv python: it records its argv, environment and working directory beside the venv
// and exits with the code in VENV/exitcode (0 if none).
const recordingPython = `#!/bin/sh
venv=$(cd "$(dirname "$0")/.." && pwd)
printf '%s\n' "$@" > "$venv/argv"
env -0 > "$venv/env"
pwd > "$venv/cwd"
echo "program stdout"
echo "program stderr" >&2
exit "$(cat "$venv/exitcode" 2>/dev/null || echo 0)"
`

type runFixture struct {
	h                *host
	venv, script     string
	project, program string
	stdout, stderr   *bytes.Buffer
}

func newRunFixture(t *testing.T, python string) *runFixture {
	tmp := t.TempDir()
	f := &runFixture{
		venv:    fakeVenv(t, tmp, python),
		script:  filepath.Join(tmp, "bin", execScriptName),
		project: filepath.Join(tmp, "project"),
		stdout:  &bytes.Buffer{},
		stderr:  &bytes.Buffer{},
	}
	f.program = filepath.Join(f.project, "src")
	writeFile(t, f.script, "# executor\n", 0o755)
	writeFile(t, filepath.Join(f.program, "__main__.py"), "", 0o644)
	f.h = newHost(options{engineAddress: "127.0.0.1:9"})
	f.h.execScript = f.script
	f.h.stdout, f.h.stderr = f.stdout, f.stderr
	return f
}

func (f *runFixture) request(t *testing.T) *pulumirpc.RunRequest {
	return &pulumirpc.RunRequest{
		Project: "proj", Stack: "dev", Pwd: f.project, Parallel: 4, MonitorAddress: "127.0.0.1:5",
		Organization: "org", Args: []string{"extra-arg"}, DryRun: true,
		Config:           map[string]string{"proj:name": "x", "proj:secret": "s3cret"},
		ConfigSecretKeys: []string{"proj:secret"},
		// "../venv" relative to the project root: the venv sits beside the project.
		Info: &pulumirpc.ProgramInfo{
			RootDirectory: f.project, ProgramDirectory: f.program, EntryPoint: ".",
			Options: runtimeOptions(t, "../venv"),
		},
	}
}

func (f *runFixture) setExitCode(t *testing.T, code int) {
	writeFile(t, filepath.Join(f.venv, "exitcode"), strconv.Itoa(code)+"\n", 0o644)
}

func (f *runFixture) env(t *testing.T) map[string]string {
	data, err := os.ReadFile(filepath.Join(f.venv, "env"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func TestRunStartsTheExecutorScriptInTheVenv(t *testing.T) {
	t.Setenv("PYTHONHOME", "/elsewhere")
	t.Setenv("PULUMI_CONFIG", `{"stale:key":"1"}`)
	f := newRunFixture(t, recordingPython)
	resp, err := f.h.Run(context.Background(), f.request(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError() != "" || resp.GetBail() {
		t.Fatalf("Run = %v, want success", resp)
	}

	want := []string{
		"-u", f.script,
		"--monitor", "127.0.0.1:5",
		"--engine", "127.0.0.1:9",
		"--project", "proj",
		"--root_directory", f.project,
		"--stack", "dev",
		"--pwd", f.project,
		"--parallel", "4",
		"--dry_run", "true",
		"--organization", "org",
		f.program, "extra-arg",
	}
	if got := readLines(t, filepath.Join(f.venv, "argv")); !reflect.DeepEqual(got, want) {
		t.Errorf("argv\n got %q\nwant %q", got, want)
	}
	if got := readLines(t, filepath.Join(f.venv, "cwd")); got[0] != f.project {
		t.Errorf("working directory %s, want the request's pwd %s", got[0], f.project)
	}

	env := f.env(t)
	var config map[string]string
	if err := json.Unmarshal([]byte(env["PULUMI_CONFIG"]), &config); err != nil {
		t.Fatalf("PULUMI_CONFIG %q: %v", env["PULUMI_CONFIG"], err)
	}
	if want := map[string]string{"proj:name": "x", "proj:secret": "s3cret"}; !reflect.DeepEqual(config, want) {
		t.Errorf("PULUMI_CONFIG = %v, want %v", config, want)
	}
	if got := env["PULUMI_CONFIG_SECRET_KEYS"]; got != `["proj:secret"]` {
		t.Errorf("PULUMI_CONFIG_SECRET_KEYS = %q", got)
	}
	if env["VIRTUAL_ENV"] != f.venv {
		t.Errorf("VIRTUAL_ENV = %q, want %s", env["VIRTUAL_ENV"], f.venv)
	}
	if !strings.HasPrefix(env["PATH"], filepath.Join(f.venv, "bin")+":") {
		t.Errorf("PATH = %q, want the venv's bin first", env["PATH"])
	}
	if _, ok := env["PYTHONHOME"]; ok {
		t.Errorf("PYTHONHOME is set in the program's environment")
	}

	// The program's output goes to the host's stdout and stderr, which the engine forwards.
	if !strings.Contains(f.stdout.String(), "program stdout") || !strings.Contains(f.stderr.String(), "program stderr") {
		t.Errorf("program output: stdout %q, stderr %q", f.stdout, f.stderr)
	}
}

func TestRunPassesDryRunOnlyForAPreview(t *testing.T) {
	f := newRunFixture(t, recordingPython)
	req := f.request(t)
	req.DryRun = false
	req.Info.EntryPoint = "__main__.py"
	req.Config, req.ConfigSecretKeys = nil, nil
	if resp, err := f.h.Run(context.Background(), req); err != nil || resp.GetError() != "" {
		t.Fatalf("Run = %v, %v", resp, err)
	}
	argv := readLines(t, filepath.Join(f.venv, "argv"))
	for _, a := range argv {
		if a == "--dry_run" {
			t.Errorf("argv %q has --dry_run for an update", argv)
		}
	}
	if got, want := argv[len(argv)-2], filepath.Join(f.program, "__main__.py"); got != want {
		t.Errorf("program %q, want the entry point %s", got, want)
	}
	env := f.env(t)
	if env["PULUMI_CONFIG"] != "{}" || env["PULUMI_CONFIG_SECRET_KEYS"] != "[]" {
		t.Errorf("without config: PULUMI_CONFIG %q, PULUMI_CONFIG_SECRET_KEYS %q, want {} and []",
			env["PULUMI_CONFIG"], env["PULUMI_CONFIG_SECRET_KEYS"])
	}
}

func TestRunMapsTheExitCode(t *testing.T) {
	f := newRunFixture(t, recordingPython)

	f.setExitCode(t, 32)
	resp, err := f.h.Run(context.Background(), f.request(t))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetBail() || resp.GetError() != "" {
		t.Errorf("exit 32: %v, want Bail (the program reported its error)", resp)
	}

	f.setExitCode(t, 3)
	resp, err = f.h.Run(context.Background(), f.request(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetBail() || !strings.Contains(resp.GetError(), "exited with code 3") {
		t.Errorf("exit 3: %v, want an error with the exit code", resp)
	}
}

func TestRunErrorsNameWhatIsMissing(t *testing.T) {
	f := newRunFixture(t, recordingPython)
	req := f.request(t)
	req.Info.Options = runtimeOptions(t, "no-venv")
	resp, err := f.h.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.project, "no-venv"); !strings.Contains(resp.GetError(), want) ||
		!strings.Contains(resp.GetError(), "make venv") {
		t.Errorf("missing venv: %q, want an error naming %s and how to create it", resp.GetError(), want)
	}

	f.h.execScript = filepath.Join(t.TempDir(), execScriptName)
	resp, err = f.h.Run(context.Background(), f.request(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.GetError(), f.h.execScript) {
		t.Errorf("missing executor script: %q, want an error naming %s", resp.GetError(), f.h.execScript)
	}
	if _, err := os.Stat(filepath.Join(f.venv, "argv")); err == nil {
		t.Errorf("the program ran although the executor script is missing")
	}
}

// A program that runs until stopped, with a grandchild in its process group.
const sleepingPython = `#!/bin/sh
venv=$(cd "$(dirname "$0")/.." && pwd)
sleep 300 &
echo $! > "$venv/grandchild.tmp" && mv "$venv/grandchild.tmp" "$venv/grandchild"
wait
`

func TestCancelStopsTheRunningProgramAndItsChildren(t *testing.T) {
	f := newRunFixture(t, sleepingPython)
	done := make(chan *pulumirpc.RunResponse, 1)
	go func() {
		resp, err := f.h.Run(context.Background(), f.request(t))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	grandchild := waitForPid(t, filepath.Join(f.venv, "grandchild"))

	start := time.Now()
	if _, err := f.h.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-done:
		if !strings.Contains(resp.GetError(), "stopped") {
			t.Errorf("Run after Cancel = %v, want an error saying the program was stopped", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Cancel")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Cancel took %v", elapsed)
	}
	if alive(grandchild) {
		t.Errorf("the program's child %d survived Cancel", grandchild)
	}
}

func TestRunStopsTheProgramWhenTheEngineCancelsTheRequest(t *testing.T) {
	f := newRunFixture(t, sleepingPython)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = f.h.Run(ctx, f.request(t))
	}()
	grandchild := waitForPid(t, filepath.Join(f.venv, "grandchild"))
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
	if alive(grandchild) {
		t.Errorf("the program's child %d survived", grandchild)
	}
}

func waitForPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
	return 0
}

// alive says whether pid runs (a zombie waiting for a reaper does not count), after a short grace for the
// signal to land.
func alive(pid int) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		gone := err != nil || syscall.Kill(pid, 0) != nil
		// /proc/PID/stat: "PID (COMM) STATE ..."
		if !gone {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				gone = true
			}
		}
		if gone {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
}
