// Command pulumi-language-python is a minimal Python language host for the engine test tier: the upstream host's
// module is not served by the Go module proxy. It is written from the LanguageRuntime protocol of sdk/v3 and does
// only what `pulumi preview|up` with a directory policy pack needs: run the program in the virtualenv that the
// project's runtime options name, report the resource plugins that virtualenv provides, and start Python policy
// packs (RunPlugin).
//
// The engine starts it as `pulumi-language-python [flags] ENGINE_ADDRESS` and reads the port it listens on from
// the first line of its stdout.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is set at build time: -ldflags "-X main.version=v3.274.0".
var version = "dev"

// maxMessageSize matches the engine's 400 MiB limit: AnalyzeStack requests of a large stack pass the proxy.
const maxMessageSize = 400 * 1024 * 1024

// options are the command line of the host.
type options struct {
	engineAddress string
	root          string
	tracing       string
}

// flagsWithValue are the flags whose value may come as the next argument (the engine passes `--tracing URL`).
var flagsWithValue = map[string]bool{"tracing": true, "root": true}

// parseArgs reads `[flags] ENGINE_ADDRESS`. Unknown flags are ignored in both `-x=v` and bare `-x` forms: the
// engine adds logging and tracing flags as it sees fit, and puts the engine address last.
func parseArgs(args []string) (options, error) {
	var opts options
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			positional = append(positional, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !hasValue && flagsWithValue[name] && i+1 < len(args) {
			i++
			value, hasValue = args[i], true
		}
		if !hasValue {
			continue
		}
		switch name {
		case "root":
			opts.root = value
		case "tracing":
			opts.tracing = value
		}
	}
	if len(positional) == 0 {
		return opts, fmt.Errorf("usage: pulumi-language-python [flags] ENGINE_ADDRESS: no engine address given")
	}
	opts.engineAddress = positional[len(positional)-1]
	return opts, nil
}

// serve starts the host on a free loopback port and prints the port on its own line to stdout.
func serve(h *host, stdout io.Writer) (*grpc.Server, <-chan error, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageSize))
	pulumirpc.RegisterLanguageRuntimeServer(srv, h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	if _, err := fmt.Fprintf(stdout, "%d\n", lis.Addr().(*net.TCPAddr).Port); err != nil {
		srv.Stop()
		return nil, nil, err
	}
	return srv, done, nil
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	h := newHost(opts)
	srv, done, err := serve(h, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}

	// The engine stops a plugin with SIGINT to its process group, then SIGKILL after 5 s. The children run in
	// process groups of their own (so that Cancel reaches their descendants), so they are stopped here.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-signals:
		h.stopChildren(2 * time.Second)
		srv.Stop()
		os.Exit(0)
	case err := <-done:
		h.stopChildren(2 * time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
			os.Exit(1)
		}
	}
}
