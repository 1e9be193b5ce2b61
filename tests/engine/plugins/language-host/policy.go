package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// RunPlugin starts a Python policy pack (kind "analyzer") as `pulumi preview --policy-pack DIR` does:
// `<venv>/bin/python -u -m pulumi.policy ENGINE_ADDRESS DIR` in DIR, the virtualenv taken from PulumiPolicy.yaml's
// runtime options relative to DIR.
//
// Through RunPlugin the engine hands the stack (name, project, config, dry run) over with ConfigureStack once it
// has connected, but `pulumi.policy` reads it only at startup, from the PULUMI_* variables the engine sets when it
// starts a pack itself. So the host serves an analyzer proxy, gives the engine the proxy's port, starts the pack
// when ConfigureStack arrives, with those variables set, and then forwards every call to the pack. sdk/v3's
// PolicyProxy does the same; it is not used because its Attach owns the pack's Wait: a pack that fails before
// printing its port would leave the host with neither its exit code nor the rest of its output.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, stream pulumirpc.LanguageRuntime_RunPluginServer) error {
	if req.GetKind() != "analyzer" {
		return status.Errorf(codes.Unimplemented, "this language host runs only policy packs (kind analyzer), not %q",
			req.GetKind())
	}
	info := req.GetInfo()
	if info.GetProgramDirectory() == "" {
		return status.Error(codes.InvalidArgument, "RunPlugin: no program directory in the request's info")
	}
	packDir := filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	venv, err := h.virtualenv(info)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "policy pack %s: %v", packDir, err)
	}
	// The engine address is the last argument (flags such as --tracing URL may come before it).
	if len(req.GetArgs()) == 0 {
		return status.Error(codes.InvalidArgument, "RunPlugin: no engine address in the request's args")
	}
	engine := req.GetArgs()[len(req.GetArgs())-1]

	ctx := stream.Context()
	out := &pluginOutput{stream: stream}
	proxy := newAnalyzerProxy()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageSize))
	pulumirpc.RegisterAnalyzerServer(srv, proxy)
	go func() { _ = srv.Serve(lis) }()
	defer stopGracefully(srv, 5*time.Second)
	if _, err := fmt.Fprintf(out.writer(false), "%d\n", lis.Addr().(*net.TCPAddr).Port); err != nil {
		return err
	}

	// Wait for the stack (or for a call that shows none is coming).
	select {
	case <-proxy.configured:
	case <-ctx.Done():
		proxy.fail(ctx.Err())
		return nil
	}

	base := req.GetEnv()
	if len(base) == 0 {
		base = os.Environ()
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), "-u", "-m", "pulumi.policy", engine, packDir)
	cmd.Dir = packDir
	cmd.Env = venvEnv(base, venv, stackEnv(proxy.stack))
	cmd.Stderr = out.writer(true)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	c, err := h.start(cmd)
	if err != nil {
		err = fmt.Errorf("policy pack %s: starting %s: %w", packDir, cmd.Path, err)
		proxy.fail(err)
		return err
	}
	go func() {
		select {
		case <-ctx.Done():
			c.stop(2 * time.Second)
		case <-c.done:
		}
	}()

	// The pack prints its port first, then anything it likes.
	lines := bufio.NewReader(stdout)
	first, readErr := lines.ReadString('\n')
	port, portErr := strconv.Atoi(strings.TrimSpace(first))
	switch {
	case readErr == nil && portErr == nil:
		conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize)))
		if err != nil {
			proxy.fail(fmt.Errorf("policy pack %s: %w", packDir, err))
		} else {
			defer conn.Close()
			proxy.connect(pulumirpc.NewAnalyzerClient(conn))
		}
	case first == "":
		proxy.fail(fmt.Errorf("policy pack %s exited before it printed its port (its output is above)", packDir))
	default:
		proxy.fail(fmt.Errorf("policy pack %s printed %q where its port belongs", packDir, first))
		_, _ = io.WriteString(out.writer(false), first)
	}
	_, _ = io.Copy(out.writer(false), lines)

	code, err := h.wait(c)
	if err != nil {
		return err
	}
	sendErr := out.exit(int32(code))
	if proxy.failure() != nil {
		// The engine's first calls (ConfigureStack) may still be on their way: let them get the reason the pack
		// did not start rather than a closed connection.
		time.Sleep(failureLinger)
	}
	// A canceled stream is the engine closing the plugin: nobody is left to tell.
	if sendErr != nil && ctx.Err() == nil {
		return sendErr
	}
	return nil
}

// failureLinger is how long the proxy outlives a pack that did not start.
const failureLinger = 2 * time.Second

// stopGracefully lets the RPCs in flight finish (each ends soon: the pack is gone), within a bound.
func stopGracefully(srv *grpc.Server, bound time.Duration) {
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(bound):
		srv.Stop()
	}
}

// stackEnv are the variables through which the pulumi.policy module learns the stack (the engine's own, for a
// pack it starts without a language host). None if the engine sent no stack (e.g. `pulumi policy publish`).
func stackEnv(stack *pulumirpc.AnalyzerStackConfigureRequest) map[string]string {
	if stack == nil {
		return nil
	}
	env := map[string]string{"PULUMI_DRY_RUN": strconv.FormatBool(stack.GetDryRun())}
	config := stack.GetConfig()
	if config == nil {
		config = map[string]string{}
	}
	if data, err := json.Marshal(config); err == nil {
		env["PULUMI_CONFIG"] = string(data)
	}
	if keys := stack.GetConfigSecretKeys(); len(keys) > 0 {
		if data, err := json.Marshal(keys); err == nil {
			env["PULUMI_CONFIG_SECRET_KEYS"] = string(data)
		}
	}
	for k, v := range map[string]string{
		"PULUMI_PROJECT": stack.GetProject(), "PULUMI_STACK": stack.GetStack(),
		"PULUMI_ORGANIZATION": stack.GetOrganization(),
	} {
		if v != "" {
			env[k] = v
		}
	}
	return env
}

// pluginOutput sends the pack's output on the RunPlugin stream: gRPC streams take one sender at a time, and
// nothing may follow the exit code.
type pluginOutput struct {
	mu     sync.Mutex
	stream pulumirpc.LanguageRuntime_RunPluginServer
	ended  bool
}

type outputWriter struct {
	out    *pluginOutput
	stderr bool
}

func (o *pluginOutput) writer(stderr bool) io.Writer { return outputWriter{o, stderr} }

func (w outputWriter) Write(p []byte) (int, error) {
	w.out.mu.Lock()
	defer w.out.mu.Unlock()
	if w.out.ended {
		return len(p), nil
	}
	chunk := append([]byte(nil), p...)
	msg := &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: chunk}}
	if w.stderr {
		msg = &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: chunk}}
	}
	if err := w.out.stream.Send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (o *pluginOutput) exit(code int32) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = true
	return o.stream.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}

// analyzerProxy is the Analyzer the engine talks to while the pack starts; it forwards to the pack once it runs.
type analyzerProxy struct {
	pulumirpc.UnimplementedAnalyzerServer

	once       sync.Once
	configured chan struct{} // closed when the stack is known (stack may be nil: none came)
	stack      *pulumirpc.AnalyzerStackConfigureRequest

	readyOnce sync.Once
	ready     chan struct{} // closed when client or err is set
	client    pulumirpc.AnalyzerClient
	err       error
}

func newAnalyzerProxy() *analyzerProxy {
	return &analyzerProxy{configured: make(chan struct{}), ready: make(chan struct{})}
}

func (p *analyzerProxy) configure(stack *pulumirpc.AnalyzerStackConfigureRequest) {
	p.once.Do(func() {
		p.stack = stack
		close(p.configured)
	})
}

func (p *analyzerProxy) connect(client pulumirpc.AnalyzerClient) {
	p.readyOnce.Do(func() {
		p.client = client
		close(p.ready)
	})
}

func (p *analyzerProxy) fail(err error) {
	p.readyOnce.Do(func() {
		p.err = err
		close(p.ready)
	})
}

// failure is why the pack could not be reached, nil while it starts or once it runs.
func (p *analyzerProxy) failure() error {
	select {
	case <-p.ready:
		return p.err
	default:
		return nil
	}
}

// pack waits for the pack's client. A call before ConfigureStack starts the pack without a stack.
func (p *analyzerProxy) pack(ctx context.Context) (pulumirpc.AnalyzerClient, error) {
	p.configure(nil)
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, status.Error(codes.Unavailable, p.err.Error())
	}
	return p.client, nil
}

// Handshake is answered here: the pack is not started yet, and the pulumi.policy module has no Handshake.
func (p *analyzerProxy) Handshake(
	context.Context, *pulumirpc.AnalyzerHandshakeRequest,
) (*pulumirpc.AnalyzerHandshakeResponse, error) {
	return &pulumirpc.AnalyzerHandshakeResponse{}, nil
}

func (p *analyzerProxy) ConfigureStack(
	ctx context.Context, req *pulumirpc.AnalyzerStackConfigureRequest,
) (*pulumirpc.AnalyzerStackConfigureResponse, error) {
	p.configure(req)
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	// The pack gets the request too (pulumi-policy reads the stack's tags from it); older packs lack it.
	resp, err := client.ConfigureStack(ctx, req)
	if status.Code(err) == codes.Unimplemented {
		return &pulumirpc.AnalyzerStackConfigureResponse{}, nil
	}
	return resp, err
}

func (p *analyzerProxy) Analyze(ctx context.Context, req *pulumirpc.AnalyzeRequest) (*pulumirpc.AnalyzeResponse, error) {
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	return client.Analyze(ctx, req)
}

func (p *analyzerProxy) AnalyzeStack(
	ctx context.Context, req *pulumirpc.AnalyzeStackRequest,
) (*pulumirpc.AnalyzeResponse, error) {
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	return client.AnalyzeStack(ctx, req)
}

func (p *analyzerProxy) Remediate(
	ctx context.Context, req *pulumirpc.AnalyzeRequest,
) (*pulumirpc.RemediateResponse, error) {
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	return client.Remediate(ctx, req)
}

func (p *analyzerProxy) GetAnalyzerInfo(ctx context.Context, req *emptypb.Empty) (*pulumirpc.AnalyzerInfo, error) {
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	return client.GetAnalyzerInfo(ctx, req)
}

func (p *analyzerProxy) GetPluginInfo(ctx context.Context, req *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	return client.GetPluginInfo(ctx, req)
}

func (p *analyzerProxy) Configure(
	ctx context.Context, req *pulumirpc.ConfigureAnalyzerRequest,
) (*emptypb.Empty, error) {
	client, err := p.pack(ctx)
	if err != nil {
		return nil, err
	}
	return client.Configure(ctx, req)
}

// Cancel reaches the pack only if it runs; one not started has nothing to cancel.
func (p *analyzerProxy) Cancel(ctx context.Context, req *emptypb.Empty) (*emptypb.Empty, error) {
	select {
	case <-p.ready:
	default:
		return &emptypb.Empty{}, nil
	}
	if p.err != nil {
		return &emptypb.Empty{}, nil
	}
	return p.client.Cancel(ctx, req)
}
