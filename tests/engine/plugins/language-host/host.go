package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// execScriptName is the executor script that runs a program under the Pulumi Python SDK; bootstrap.sh installs
// it next to the host binary.
const execScriptName = "pulumi-language-python-exec"

// host implements the LanguageRuntime service. Methods this host does not need answer Unimplemented.
type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	opts options
	// execScript overrides the executor script's path (tests); empty means next to the host's executable.
	execScript string
	// stdout and stderr receive the program's output; the engine forwards the host's own.
	stdout, stderr io.Writer

	mu sync.Mutex
	// rootDir and programDir come from Handshake, a fallback for requests without them.
	rootDir, programDir string
	children            map[*child]struct{}
}

func newHost(opts options) *host {
	return &host{
		opts:     opts,
		rootDir:  opts.root,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		children: map[*child]struct{}{},
	}
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.RootDirectory != nil {
		h.rootDir = req.GetRootDirectory()
	}
	if req.ProgramDirectory != nil {
		h.programDir = req.GetProgramDirectory()
	}
	if req.GetEngineAddress() != "" {
		h.opts.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	venv, err := h.virtualenv(req.GetInfo())
	if err != nil {
		return nil, err
	}
	plugins, err := venvPlugins(venv)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range plugins {
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Name, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

// GetRequiredPlugins is the deprecated form of GetRequiredPackages, kept for engines that fall back to it.
func (h *host) GetRequiredPlugins(
	_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	venv, err := h.virtualenv(req.GetInfo())
	if err != nil {
		return nil, err
	}
	plugins, err := venvPlugins(venv)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range plugins {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Kind: "resource", Name: p.Name, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.stopChildren(2 * time.Second)
	return &emptypb.Empty{}, nil
}

// virtualenv resolves the request's virtualenv; a relative one is relative to the project root.
func (h *host) virtualenv(info *pulumirpc.ProgramInfo) (string, error) {
	return resolveVirtualenv(info.GetOptions().AsMap(), h.root(info))
}

// execScriptPath is the executor script next to the host's resolved executable: the engine may run the host
// through a symlink on PATH, while the script is installed beside the real binary.
func (h *host) execScriptPath() (string, error) {
	script := h.execScript
	if script == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("locating the language host executable: %w", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return "", fmt.Errorf("locating the language host executable: %w", err)
		}
		script = filepath.Join(filepath.Dir(exe), execScriptName)
	}
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("the executor script %s is missing: it must be installed next to "+
			"pulumi-language-python (tests/engine/bootstrap.sh does that)", script)
	}
	return script, nil
}

// child is a process the host started: a program or a policy pack.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs cmd in a process group of its own, so that Cancel can stop its descendants too. Pdeathsig kills it
// if the host itself is killed (the engine's SIGKILL to the host's group does not reach another group).
func (h *host) start(cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	h.mu.Lock()
	h.children[c] = struct{}{}
	h.mu.Unlock()
	return c, nil
}

// wait waits for a child started by start and returns its exit code (-1 if a signal ended it).
func (h *host) wait(c *child) (int, error) {
	err := c.cmd.Wait()
	close(c.done)
	h.mu.Lock()
	delete(h.children, c)
	h.mu.Unlock()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return -1, err
	}
	return c.cmd.ProcessState.ExitCode(), nil
}

// stop sends SIGTERM to the child's process group, then SIGKILL if it has not exited after grace.
func (c *child) stop(grace time.Duration) {
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		// Bounded: a descendant that left the group may still hold the child's output open.
		select {
		case <-c.done:
		case <-time.After(grace):
		}
	}
}

// stopChildren stops every running child and returns when they have exited.
func (h *host) stopChildren(grace time.Duration) {
	h.mu.Lock()
	children := make([]*child, 0, len(h.children))
	for c := range h.children {
		children = append(children, c)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range children {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(grace) }()
	}
	wg.Wait()
}
