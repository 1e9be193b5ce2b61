package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The test binary doubles as the processes the tests start: LH_TEST_MODE=host runs the real main (the host as
// the engine starts it), LH_TEST_MODE=pack a fake policy pack (policy_test.go).
func TestMain(m *testing.M) {
	switch os.Getenv("LH_TEST_MODE") {
	case "host":
		main()
		os.Exit(0)
	case "pack":
		fakePack()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseArgs(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want options
	}{
		{"address only", []string{"127.0.0.1:1"}, options{engineAddress: "127.0.0.1:1"}},
		{"known flags with =", []string{"-root=/r", "-tracing=http://t", "127.0.0.1:1"},
			options{engineAddress: "127.0.0.1:1", root: "/r", tracing: "http://t"}},
		{"known flags with separate values", []string{"-root", "/r", "--tracing", "http://t", "127.0.0.1:1"},
			options{engineAddress: "127.0.0.1:1", root: "/r", tracing: "http://t"}},
		{"unknown flags, bare and with =", []string{"--logtostderr", "-v=9", "-x", "--unknown=v", "127.0.0.1:1"},
			options{engineAddress: "127.0.0.1:1"}},
		{"an unknown flag's separate value does not hide the address", []string{"-foo", "bar", "127.0.0.1:1"},
			options{engineAddress: "127.0.0.1:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parseArgs(%q) = %+v, want %+v", tc.args, got, tc.want)
			}
		})
	}
	for _, args := range [][]string{nil, {"-v=9", "--logtostderr"}} {
		if _, err := parseArgs(args); err == nil || !strings.Contains(err.Error(), "no engine address") {
			t.Errorf("parseArgs(%q): error %v, want one saying there is no engine address", args, err)
		}
	}
}

// TestTheHostAsTheEngineStartsIt runs the real main through a symlink, with the flags the engine may pass: it
// prints its port, serves on it, takes the engine address from the end of the command line, finds the executor
// script beside its resolved executable (not beside the symlink), and exits on SIGINT.
func TestTheHostAsTheEngineStartsIt(t *testing.T) {
	tmp := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Join(tmp, "real")
	pathDir := filepath.Join(tmp, "on-path")
	for _, d := range []string{realDir, pathDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, self, filepath.Join(realDir, "pulumi-language-python"), 0o755)
	writeFile(t, filepath.Join(realDir, execScriptName), "# the executor script\n", 0o755)
	if err := os.Symlink(filepath.Join(realDir, "pulumi-language-python"),
		filepath.Join(pathDir, "pulumi-language-python")); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(filepath.Join(pathDir, "pulumi-language-python"),
		"--logtostderr", "-v=9", "--tracing", "http://tracing.invalid", "-root=/unused", "-unknown", "127.0.0.1:4242")
	cmd.Env = append(os.Environ(), "LH_TEST_MODE=host")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the port line: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	if err != nil || port <= 0 {
		t.Fatalf("first stdout line %q is not a port", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout); exited <- cmd.Wait() }()
	client := dial(t, port)

	info, err := client.GetPluginInfo(context.Background(), &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetVersion() != version {
		t.Errorf("GetPluginInfo version %q, want %q", info.GetVersion(), version)
	}

	venv := fakeVenv(t, tmp, recordingPython)
	project := filepath.Join(tmp, "project")
	writeFile(t, filepath.Join(project, "__main__.py"), "", 0o644)
	resp, err := client.Run(context.Background(), &pulumirpc.RunRequest{
		Project: "p", Stack: "s", Pwd: project, Parallel: 1, MonitorAddress: "127.0.0.1:1",
		Info: &pulumirpc.ProgramInfo{
			RootDirectory: project, ProgramDirectory: project, EntryPoint: ".", Options: runtimeOptions(t, venv),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError() != "" || resp.GetBail() {
		t.Fatalf("Run = %v, want success", resp)
	}
	argv := readLines(t, filepath.Join(venv, "argv"))
	if want := filepath.Join(realDir, execScriptName); len(argv) < 2 || argv[1] != want {
		t.Errorf("the program ran %q, want the executor script %s (beside the resolved executable)", argv, want)
	}
	if got := flagValue(argv, "--engine"); got != "127.0.0.1:4242" {
		t.Errorf("--engine %q, want the last argument of the host, 127.0.0.1:4242", got)
	}
	if got := flagValue(argv, "--tracing"); got != "http://tracing.invalid" {
		t.Errorf("--tracing %q, want the host's --tracing value", got)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("host exit after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host did not exit on SIGINT")
	}
}

// serveHost serves h in this process and returns a client to it, through the port serve printed.
func serveHost(t *testing.T, h *host) pulumirpc.LanguageRuntimeClient {
	t.Helper()
	r, w := io.Pipe()
	type served struct {
		srv *grpc.Server
		err error
	}
	done := make(chan served, 1)
	go func() {
		srv, _, err := serve(h, w)
		done <- served{srv, err}
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(s.srv.Stop)
	port, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	if err != nil {
		t.Fatalf("serve printed %q, not a port", line)
	}
	return dial(t, port)
}

func dial(t *testing.T, port int) pulumirpc.LanguageRuntimeClient {
	t.Helper()
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pulumirpc.NewLanguageRuntimeClient(conn)
}

// runtimeOptions is the runtime options `virtualenv: VENV` as the engine sends them.
func runtimeOptions(t *testing.T, venv string) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(map[string]any{"toolchain": "pip", "virtualenv": venv})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data), mode)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// flagValue is the argument after flag in argv ("" if absent).
func flagValue(argv []string, flag string) string {
	for i, a := range argv {
		if a == flag && i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}
