// Command standin-provider is a stand-in resource provider plugin for meshlab's engine tests. The
// providers pulumi-command, pulumi-random and pulumi-tls are not served by the Go module proxy, so
// tests/engine/bootstrap.sh builds this one binary once for each of them:
//
//	go build -ldflags "-X main.name=command -X main.version=1.2.1" -o pulumi-resource-command .
//
// It answers as those providers do on a first `pulumi preview` (inputs echoed, computed outputs
// unknown) and refuses anything else, except that the random stand-in really creates, refreshes and
// deletes random:index/randomPassword:RandomPassword (password.go), which a `pulumi up` needs. It
// never runs a command, generates a key, or touches the network or a file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Set with -ldflags "-X main.name=NAME -X main.version=VERSION".
var (
	name    string
	version string
)

func main() {
	if err := serve(context.Background(), name, version, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serve runs the plugin as the engine starts it: `PLUGIN [flags] ENGINE_ADDRESS`. It listens on a
// free loopback port, writes that port and a newline to stdout (the engine reads it to dial back),
// and serves until the engine interrupts it (SIGINT), ctx ends, or the engine stops answering.
func serve(ctx context.Context, name, version string, args []string, stdout io.Writer) error {
	if name == "" || version == "" {
		// A bootstrap build that forgot the ldflags would otherwise answer as a nameless provider.
		return errors.New(`stand-in provider (meshlab engine tests): built without ` +
			`-ldflags "-X main.name=NAME -X main.version=VERSION"`)
	}
	p := newStandIn(name, version)

	// The flags the engine may pass (buildPluginArguments in the SDK's plugin.go); logging and
	// tracing are accepted and ignored: the stand-in has nothing worth logging.
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Bool("logtostderr", false, "")
	flags.Int("v", 0, "")
	flags.String("tracing", "", "")
	flags.Bool("logflow", false, "")
	if err := flags.Parse(args); err != nil {
		return errors.New(p.prefix() + err.Error())
	}
	if flags.NArg() > 1 {
		return fmt.Errorf("%sexpected at most one argument, the engine's address; got %q", p.prefix(), flags.Args())
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if flags.NArg() == 1 {
		// Exit once the engine is gone, so a killed `pulumi` leaves no stand-in behind for long.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		if err := rpcutil.Healthcheck(ctx, flags.Arg(0), time.Minute, cancel); err != nil {
			return fmt.Errorf("%sengine health check: %w", p.prefix(), err)
		}
	}

	cancelServing := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancelServing)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelServing,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterResourceProviderServer(srv, p)
			return nil
		},
	})
	if err != nil {
		return errors.New(p.prefix() + err.Error())
	}
	if _, err := fmt.Fprintf(stdout, "%d\n", handle.Port); err != nil {
		return errors.New(p.prefix() + err.Error())
	}
	if err := <-handle.Done; err != nil {
		return errors.New(p.prefix() + err.Error())
	}
	return nil
}
