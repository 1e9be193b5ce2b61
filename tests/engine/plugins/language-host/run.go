package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// exitCodeReported is the executor script's exit code after the program has shown its error to the user.
const exitCodeReported = 32

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	venv, err := h.virtualenv(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	script, err := h.execScriptPath()
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env, err := programEnv(req)
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(filepath.Join(venv, "bin", "python"), programArgs(req, script, h.engineAddress(), h.root(info),
		h.opts.tracing)...)
	if cmd.Dir = req.GetPwd(); cmd.Dir != "" {
		// exec would blame the python binary for a missing working directory.
		if st, err := os.Stat(cmd.Dir); err != nil || !st.IsDir() {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("the working directory %s does not exist", cmd.Dir)}, nil
		}
	}
	cmd.Env = venvEnv(os.Environ(), venv, env)
	cmd.Stdout, cmd.Stderr = h.stdout, h.stderr
	c, err := h.start(cmd)
	if err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("starting %s: %v", cmd.Path, err)}, nil
	}
	// The engine cancels the request when it gives up on the run: the program goes with it.
	go func() {
		select {
		case <-ctx.Done():
			c.stop(2 * time.Second)
		case <-c.done:
		}
	}()
	code, err := h.wait(c)
	switch {
	case err != nil:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("running the Python program: %v", err)}, nil
	case code == 0:
		return &pulumirpc.RunResponse{}, nil
	case code == exitCodeReported:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case code < 0:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("the Python program was stopped: %v", c.cmd.ProcessState)},
			nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("the Python program exited with code %d", code)}, nil
	}
}

// programArgs is the executor script's command line (its argparse flags at sdk/v3 v3.272.0).
func programArgs(req *pulumirpc.RunRequest, script, engine, root, tracing string) []string {
	args := []string{
		"-u", script,
		"--monitor", req.GetMonitorAddress(),
		"--engine", engine,
		"--project", req.GetProject(),
		"--root_directory", root,
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		// The script reads int(--parallel) unconditionally.
		"--parallel", strconv.Itoa(int(req.GetParallel())),
	}
	// --dry_run takes a value; the script compares it to "true".
	if req.GetDryRun() {
		args = append(args, "--dry_run", "true")
	}
	if req.GetOrganization() != "" {
		args = append(args, "--organization", req.GetOrganization())
	}
	if tracing != "" {
		args = append(args, "--tracing", tracing)
	}
	args = append(args, programPath(req))
	return append(args, req.GetArgs()...)
}

// programPath is the program to run: the entry point in the program directory ("." is the directory, whose
// __main__.py Python runs).
func programPath(req *pulumirpc.RunRequest) string {
	info := req.GetInfo()
	if info == nil {
		if filepath.IsAbs(req.GetProgram()) {
			return req.GetProgram()
		}
		return filepath.Join(req.GetPwd(), req.GetProgram())
	}
	dir := info.GetProgramDirectory()
	if dir == "" {
		dir = req.GetPwd()
	}
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	return filepath.Join(dir, entry)
}

// programEnv is how the executor script receives the stack's config: PULUMI_CONFIG, a JSON object of the
// config, and PULUMI_CONFIG_SECRET_KEYS, a JSON array of the keys whose values are secret.
func programEnv(req *pulumirpc.RunRequest) (map[string]string, error) {
	config := req.GetConfig()
	if config == nil {
		config = map[string]string{}
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	keysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	return map[string]string{"PULUMI_CONFIG": string(configJSON), "PULUMI_CONFIG_SECRET_KEYS": string(keysJSON)}, nil
}

func (h *host) engineAddress() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opts.engineAddress
}

// root is the project root: the request's, else Handshake's or -root, else the program directory.
func (h *host) root(info *pulumirpc.ProgramInfo) string {
	if root := info.GetRootDirectory(); root != "" {
		return root
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rootDir != "" {
		return h.rootDir
	}
	return info.GetProgramDirectory()
}
