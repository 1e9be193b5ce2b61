package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// packPython is the pack's fake venv python: it runs this test binary as the fake pack (LH_TEST_MODE=pack and
// LH_FAKE_PACK_BIN come from the RunPlugin request's env, so they arrive only if the host passes that env on).
const packPython = "#!/bin/sh\nexec \"$LH_FAKE_PACK_BIN\" \"$@\"\n"

// packRecord is what the fake pack saw when it started.
type packRecord struct {
	Args []string          `json:"args"`
	Cwd  string            `json:"cwd"`
	Env  map[string]string `json:"env"`
}

// fakePack stands in for `python -m pulumi.policy ENGINE DIR`: it records how it was started, prints its port
// like pulumi-policy, and serves an Analyzer. Cancel makes it print a line and exit with code 7.
// LH_FAKE_PACK_CRASH makes it fail before it prints its port, as a pack with an import error does.
func fakePack() {
	fmt.Fprintln(os.Stderr, "fake pack on stderr")
	if os.Getenv("LH_FAKE_PACK_CRASH") != "" {
		os.Exit(4)
	}
	cwd, _ := os.Getwd()
	rec := packRecord{Args: os.Args[1:], Cwd: cwd, Env: map[string]string{}}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		rec.Env[k] = v
	}
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(os.Getenv("LH_FAKE_PACK_RECORD"), data, 0o644); err != nil {
		os.Exit(90)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(91)
	}
	srv := grpc.NewServer()
	pulumirpc.RegisterAnalyzerServer(srv, &fakeAnalyzer{})
	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)
	_ = srv.Serve(lis)
}

type fakeAnalyzer struct {
	pulumirpc.UnimplementedAnalyzerServer
	mu   sync.Mutex
	tags map[string]string
}

func (a *fakeAnalyzer) ConfigureStack(
	_ context.Context, req *pulumirpc.AnalyzerStackConfigureRequest,
) (*pulumirpc.AnalyzerStackConfigureResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tags = req.GetTags()
	return &pulumirpc.AnalyzerStackConfigureResponse{}, nil
}

func (a *fakeAnalyzer) GetAnalyzerInfo(context.Context, *emptypb.Empty) (*pulumirpc.AnalyzerInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &pulumirpc.AnalyzerInfo{Name: "fake-pack", Description: "team=" + a.tags["team"]}, nil
}

func (a *fakeAnalyzer) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	fmt.Println("fake pack says bye")
	go func() { time.Sleep(100 * time.Millisecond); os.Exit(7) }()
	return &emptypb.Empty{}, nil
}

type packFixture struct {
	client            pulumirpc.LanguageRuntimeClient
	venv, pack, cwd   string
	record            string
	packEnvFromCaller []string
}

func newPackFixture(t *testing.T) *packFixture {
	tmp := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &packFixture{
		venv:   fakeVenv(t, tmp, packPython),
		pack:   filepath.Join(tmp, "policy-pack"),
		cwd:    filepath.Join(tmp, "project"),
		record: filepath.Join(tmp, "record.json"),
	}
	writeFile(t, filepath.Join(f.pack, "PulumiPolicy.yaml"), "runtime: python\n", 0o644)
	f.packEnvFromCaller = []string{
		"PATH=/usr/bin:/bin", "LH_TEST_MODE=pack", "LH_FAKE_PACK_BIN=" + self, "LH_FAKE_PACK_RECORD=" + f.record,
		"FROM_THE_ENGINE=yes", "PULUMI_STACK=stale",
	}
	f.client = serveHost(t, newHost(options{engineAddress: "127.0.0.1:1"}))
	return f
}

func (f *packFixture) request(t *testing.T) *pulumirpc.RunPluginRequest {
	// As the v3.274 engine sends it: the program's directory as pwd, the pack's directory in info with
	// PulumiPolicy.yaml's runtime options, the engine address as the last argument, its whole environment.
	return &pulumirpc.RunPluginRequest{
		Kind: "analyzer",
		Pwd:  f.cwd,
		Args: []string{"--tracing", "http://tracing.invalid", "127.0.0.1:7777"},
		Env:  f.packEnvFromCaller,
		Info: &pulumirpc.ProgramInfo{
			RootDirectory: f.pack, ProgramDirectory: f.pack, EntryPoint: ".",
			Options: runtimeOptions(t, "../venv"),
		},
	}
}

// pluginStream collects a RunPlugin stream: stdout, stderr, the exit code and how the stream ended.
type pluginStream struct {
	stdout, stderr strings.Builder
	exitCode       *int32
	afterExit      int
	end            error
}

func collect(stream pulumirpc.LanguageRuntime_RunPluginClient, into *pluginStream) {
	for {
		msg, err := stream.Recv()
		if err != nil {
			into.end = err
			return
		}
		if into.exitCode != nil {
			into.afterExit++
		}
		switch out := msg.GetOutput().(type) {
		case *pulumirpc.RunPluginResponse_Stdout:
			into.stdout.Write(out.Stdout)
		case *pulumirpc.RunPluginResponse_Stderr:
			into.stderr.Write(out.Stderr)
		case *pulumirpc.RunPluginResponse_Exitcode:
			code := out.Exitcode
			into.exitCode = &code
		}
	}
}

// analyzerPort reads the port line that starts a RunPlugin stream.
func analyzerPort(t *testing.T, stream pulumirpc.LanguageRuntime_RunPluginClient) (pulumirpc.AnalyzerClient, string) {
	t.Helper()
	var first []byte
	for !strings.Contains(string(first), "\n") {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("RunPlugin ended before a port line: %v", err)
		}
		first = append(first, msg.GetStdout()...)
	}
	line, rest, _ := strings.Cut(string(first), "\n")
	port, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("RunPlugin's first line %q is not a port", line)
	}
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pulumirpc.NewAnalyzerClient(conn), rest
}

func TestRunPluginStartsThePackWithTheStackTheEngineConfigures(t *testing.T) {
	f := newPackFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := f.client.RunPlugin(ctx, f.request(t))
	if err != nil {
		t.Fatal(err)
	}
	analyzer, _ := analyzerPort(t, stream)

	// The engine's sequence: Handshake, ConfigureStack, then the analyzer calls.
	if _, err := analyzer.Handshake(ctx, &pulumirpc.AnalyzerHandshakeRequest{EngineAddress: "127.0.0.1:7777"}); err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	if _, err := os.Stat(f.record); err == nil {
		t.Fatal("the pack started before the engine sent the stack")
	}
	_, err = analyzer.ConfigureStack(ctx, &pulumirpc.AnalyzerStackConfigureRequest{
		Stack: "dev", Project: "proj", Organization: "org", DryRun: true,
		Config: map[string]string{"proj:k": "v"}, ConfigSecretKeys: []string{"proj:k"},
		Tags: map[string]string{"team": "mesh"},
	})
	if err != nil {
		t.Fatalf("ConfigureStack: %v", err)
	}
	info, err := analyzer.GetAnalyzerInfo(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatalf("GetAnalyzerInfo: %v", err)
	}
	// The pack answers through the proxy, and got the ConfigureStack request too.
	if info.GetName() != "fake-pack" || info.GetDescription() != "team=mesh" {
		t.Errorf("GetAnalyzerInfo = %v, want the pack's answer with the stack's tags", info)
	}

	var rec packRecord
	data, err := os.ReadFile(f.record)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if want := []string{"-u", "-m", "pulumi.policy", "127.0.0.1:7777", f.pack}; !reflect.DeepEqual(rec.Args, want) {
		t.Errorf("pack argv %q, want %q", rec.Args, want)
	}
	if rec.Cwd != f.pack {
		t.Errorf("pack working directory %s, want the pack's directory %s", rec.Cwd, f.pack)
	}
	wantEnv := map[string]string{
		"FROM_THE_ENGINE":           "yes",
		"PULUMI_STACK":              "dev",
		"PULUMI_PROJECT":            "proj",
		"PULUMI_ORGANIZATION":       "org",
		"PULUMI_DRY_RUN":            "true",
		"PULUMI_CONFIG":             `{"proj:k":"v"}`,
		"PULUMI_CONFIG_SECRET_KEYS": `["proj:k"]`,
		"VIRTUAL_ENV":               f.venv,
		"PATH":                      filepath.Join(f.venv, "bin") + ":/usr/bin:/bin",
	}
	for k, want := range wantEnv {
		if got := rec.Env[k]; got != want {
			t.Errorf("pack env %s=%q, want %q", k, got, want)
		}
	}

	// The pack exits (code 7) after printing a line: the stream carries its output, then the exit code, last.
	if _, err := analyzer.Cancel(ctx, &emptypb.Empty{}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	var got pluginStream
	collect(stream, &got)
	if !errors.Is(got.end, io.EOF) {
		t.Errorf("stream ended with %v, want EOF", got.end)
	}
	if got.exitCode == nil || *got.exitCode != 7 || got.afterExit != 0 {
		t.Errorf("exit code %v with %d messages after it, want 7 as the last message", got.exitCode, got.afterExit)
	}
	if !strings.Contains(got.stdout.String(), "fake pack says bye") {
		t.Errorf("stdout %q lacks the pack's output", got.stdout.String())
	}
	if !strings.Contains(got.stderr.String(), "fake pack on stderr") {
		t.Errorf("stderr %q lacks the pack's stderr", got.stderr.String())
	}
}

func TestRunPluginReportsAPackThatDiesBeforeItsPort(t *testing.T) {
	f := newPackFixture(t)
	req := f.request(t)
	req.Env = append(req.Env, "LH_FAKE_PACK_CRASH=1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := f.client.RunPlugin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	analyzer, _ := analyzerPort(t, stream)
	_, err = analyzer.ConfigureStack(ctx, &pulumirpc.AnalyzerStackConfigureRequest{Stack: "dev"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), f.pack) {
		t.Errorf("ConfigureStack: %v, want Unavailable naming the pack", err)
	}
	var got pluginStream
	collect(stream, &got)
	if got.exitCode == nil || *got.exitCode != 4 {
		t.Errorf("exit code %v, want the pack's 4", got.exitCode)
	}
	if !strings.Contains(got.stderr.String(), "fake pack on stderr") {
		t.Errorf("stderr %q lacks the pack's stderr", got.stderr.String())
	}
}

func TestRunPluginRefusesWhatItCannotRun(t *testing.T) {
	f := newPackFixture(t)
	ctx := context.Background()

	req := f.request(t)
	req.Kind = "resource"
	stream, err := f.client.RunPlugin(ctx, req)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("kind resource: %v, want Unimplemented", err)
	}

	req = f.request(t)
	req.Info.Options = runtimeOptions(t, "../no-venv")
	stream, err = f.client.RunPlugin(ctx, req)
	if err == nil {
		_, err = stream.Recv()
	}
	if want := filepath.Join(filepath.Dir(f.pack), "no-venv"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("missing pack venv: %v, want an error naming %s", err, want)
	}
}
