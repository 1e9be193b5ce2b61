package main

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// readPort reads the first line of a plugin's stdout, as the engine does, and checks it is a port.
func readPort(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the port: %v (read %q)", err, line)
	}
	port, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	if err != nil || port <= 0 || port > 65535 {
		t.Fatalf("the first line of stdout is not a port: %q", line)
	}
	return line[:len(line)-1]
}

func TestServePrintsItsPortAndServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	// The flags and the engine address the engine passes; the first health check of the (absent)
	// engine is a minute away.
	go func() { done <- serve(ctx, "tls", "5.6.2", []string{"--logtostderr", "-v=9", "127.0.0.1:1"}, w) }()

	port := readPort(t, bufio.NewReader(r))
	info, err := dial(t, "127.0.0.1:"+port).GetPluginInfo(context.Background(), &emptypb.Empty{})
	if err != nil || info.GetVersion() != "5.6.2" {
		t.Fatalf("GetPluginInfo = %v, %v", info, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop when cancelled")
	}
}

func TestServeRefusesToStartWithoutANameOrWithStrayArguments(t *testing.T) {
	err := serve(context.Background(), "", "", nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-X main.name=NAME -X main.version=VERSION") {
		t.Fatalf("serve without ldflags: %v", err)
	}
	err = serve(context.Background(), "random", "4.21.4", []string{"a", "b"}, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), `stand-in provider "random" 4.21.4 (meshlab engine tests): `) {
		t.Fatalf("serve with two arguments: %v", err)
	}
}

// The binary as bootstrap.sh builds it: the ldflags name and version are what it reports, it says
// nothing on stderr, and it exits cleanly on the engine's SIGINT.
func TestTheBinaryReportsItsLdflagsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pulumi-resource-random")
	build := exec.Command("go", "build", "-ldflags", "-X main.name=random -X main.version=4.21.4", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	out := bufio.NewReader(stdout)
	c := dial(t, "127.0.0.1:"+readPort(t, out))
	info, err := c.GetPluginInfo(context.Background(), &emptypb.Empty{})
	if err != nil || info.GetVersion() != "4.21.4" {
		t.Fatalf("GetPluginInfo = %v, %v", info, err)
	}
	_, err = c.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: "urn:pulumi:s::p::random:index/randomPassword:RandomPassword::pw",
	})
	if err == nil || !strings.Contains(err.Error(), `stand-in provider "random" 4.21.4 (meshlab engine tests): `) {
		t.Fatalf("Create outside a preview: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var rest []byte
	go func() {
		rest, _ = io.ReadAll(out) // until the binary exits; Wait only after the last read
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v (stderr %q)", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the binary did not exit on SIGINT")
	}
	if stderr.Len() != 0 {
		t.Fatalf("the binary wrote to stderr: %q", stderr.String())
	}
	if len(rest) != 0 {
		t.Fatalf("the binary wrote more than its port to stdout: %q", rest)
	}
}
