// Command pulumi-language-python is a small Python language host for the Pulumi engine.
//
// Pulumi's own language host lives in a Go module the offline module proxy does not serve, so
// this project ships its own. It implements the part of the LanguageRuntime protocol that
// `pulumi preview/up/refresh/destroy` use for a pip + virtualenv project: it runs the program
// through the SDK's `pulumi-language-python-exec` shim, exactly as Pulumi's host does.
//
// What it supports: the pip toolchain with or without a virtualenv, a `main:` directory or file in
// Pulumi.yaml (the program runs from its program directory), SIGINT and SIGTERM (forwarded to the
// running program), and Cancel (stops the running program; the host keeps serving). What it does not
// (other toolchains, a typechecker, attaching a debugger, plugins written in Python) is refused with
// a message that says so.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	execShim = "pulumi-language-python-exec"
	// The exec shim exits with this code after it has already shown the user an error.
	exitAfterUserMessage = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	exec          string
	mu            sync.Mutex
	engineAddress string
	running       map[*program]struct{}
	closing       bool // a signal or a vanished engine: no new program starts
}

// program is one run of the user's program; stop ends it with the given signal (then a kill after
// the exec package's WaitDelay).
type program struct {
	mu     sync.Mutex
	signal os.Signal
	cancel context.CancelFunc
}

func (p *program) stop(sig os.Signal) {
	p.mu.Lock()
	if p.signal == nil {
		p.signal = sig
	}
	p.mu.Unlock()
	p.cancel()
}

func (p *program) stopSignal() os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.signal == nil {
		return os.Interrupt
	}
	return p.signal
}

// stopAll stops every running program; closing also refuses programs that have not started yet.
func (h *host) stopAll(sig os.Signal, closing bool) {
	h.mu.Lock()
	h.closing = h.closing || closing
	running := make([]*program, 0, len(h.running))
	for p := range h.running {
		running = append(running, p)
	}
	h.mu.Unlock()
	for _, p := range running {
		p.stop(sig)
	}
}

func main() {
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	flag.String("tracing", "", "ignored: accepted for compatibility with the engine")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	self, err := os.Executable()
	if err != nil {
		fail(fmt.Errorf("cannot locate this executable: %w", err))
	}
	shim := filepath.Join(filepath.Dir(self), execShim)
	if _, err := os.Stat(shim); err != nil {
		fail(fmt.Errorf("missing %s beside the language host: %w", shim, err))
	}

	h := &host{exec: shim, running: map[*program]struct{}{}}
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[0]
	}

	// SIGINT or SIGTERM to the host goes on to the running program as the same signal; the server then
	// stops gracefully, once the program has ended. A vanished engine stops the program with SIGINT.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() {
		select {
		case sig := <-signals:
			h.stopAll(sig, true)
		case <-ctx.Done():
			h.stopAll(os.Interrupt, true)
		}
		signal.Stop(signals)
		stop()
		close(done)
	}()
	if h.engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, h.engineAddress, 5*time.Minute, stop); err != nil {
			fail(fmt.Errorf("cannot start the engine health check: %w", err))
		}
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: done,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fail(fmt.Errorf("cannot start the language host: %w", err))
	}
	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail(fmt.Errorf("language host stopped serving: %w", err))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pulumi-language-python:", err)
	os.Exit(1)
}

// python returns the interpreter of the project's virtualenv, or the one on PATH when the project names none.
func python(info *pulumirpc.ProgramInfo) (string, []string, error) {
	opts := map[string]any{}
	if info != nil && info.Options != nil {
		opts = info.Options.AsMap()
	}
	if tc, ok := opts["toolchain"].(string); ok && tc != "" && tc != "pip" {
		return "", nil, fmt.Errorf("runtime option toolchain=%q is not supported by this language host; use pip", tc)
	}
	if tc, ok := opts["typechecker"].(string); ok && tc != "" {
		return "", nil, fmt.Errorf("runtime option typechecker=%q is not supported by this language host; "+
			"remove it from Pulumi.yaml and run %s yourself", tc, tc)
	}
	venv, _ := opts["virtualenv"].(string)
	if venv == "" {
		cmd := os.Getenv("PULUMI_PYTHON_CMD")
		if cmd == "" {
			cmd = "python3"
		}
		return cmd, nil, nil
	}
	if !filepath.IsAbs(venv) && info != nil {
		venv = filepath.Join(info.RootDirectory, venv)
	}
	bin := filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("the virtualenv %s named in Pulumi.yaml does not exist: "+
			"create it with `python3 -m venv %s` and install the project's requirements into it", venv, venv)
	}
	env := []string{
		"VIRTUAL_ENV=" + venv,
		"PATH=" + filepath.Join(venv, "bin") + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	return bin, env, nil
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engineAddress = req.EngineAddress
	h.mu.Unlock()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// The dynamic-provider plugin is found on PATH; a project of plain dynamic resources needs no packages.
func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	bin, _, err := python(req.GetInfo())
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		return nil, fmt.Errorf("cannot run %s: %w", bin, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: bin,
		Version:    strings.TrimSpace(string(out)),
		Metadata:   map[string]string{"toolchain": "pip"},
	}, nil
}

// Dependencies are installed by the project's own set-up (make), never by the engine behind its back.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	_, _, err := python(req.GetInfo())
	return err
}

// RunPlugin would run a provider or policy pack written in Python; this host runs programs only.
func (h *host) RunPlugin(*pulumirpc.RunPluginRequest, pulumirpc.LanguageRuntime_RunPluginServer) error {
	return status.Error(codes.Unimplemented, "plugins written in Python (a local provider or policy pack) are "+
		"not supported by this project's language host; install Pulumi's own pulumi-language-python for them")
}

// Cancel stops the program running now; a later Run starts normally (the engine reuses the host).
func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.stopAll(os.Interrupt, false)
	return &emptypb.Empty{}, nil
}

// start registers a program run; nil when the host is shutting down.
func (h *host) start(cancel context.CancelFunc) *program {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil
	}
	p := &program{cancel: cancel}
	h.running[p] = struct{}{}
	return p
}

func (h *host) finish(p *program) {
	h.mu.Lock()
	delete(h.running, p)
	h.mu.Unlock()
}

// programDirectory is where the program runs: Pulumi.yaml's `main:` directory (or the directory of a
// `main:` file), else the project root.
func programDirectory(req *pulumirpc.RunRequest) string {
	for _, dir := range []string{req.GetInfo().GetProgramDirectory(), req.GetPwd(), req.GetInfo().GetRootDirectory()} {
		if dir != "" {
			return dir
		}
	}
	return "."
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "attaching a debugger (pulumi --attach-debugger) is not supported " +
			"by this language host; run without it"}, nil
	}
	bin, env, err := python(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	dir := programDirectory(req)
	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	if _, err := os.Stat(filepath.Join(dir, entry)); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("the program %s (Pulumi.yaml `main:`, relative to %s) "+
			"cannot be read: %v", entry, dir, err)}, nil
	}
	// A stack without config still gets an object: the exec shim iterates over it ("null" crashes it).
	stackConfig := req.GetConfig()
	if stackConfig == nil {
		stackConfig = map[string]string{}
	}
	config, err := json.Marshal(stackConfig)
	if err != nil {
		return nil, fmt.Errorf("cannot serialise the stack configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("cannot serialise the secret configuration keys: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running := h.start(cancel)
	if running == nil {
		return &pulumirpc.RunResponse{Error: "the language host is shutting down (it received a signal)"}, nil
	}
	defer h.finish(running)
	// The engine ending the request (it gave up or was interrupted) stops the program too.
	defer context.AfterFunc(ctx, func() { running.stop(os.Interrupt) })()
	cmd := exec.CommandContext(runCtx, bin, append([]string{"-u", h.exec}, h.arguments(req, dir, entry)...)...)
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(running.stopSignal()); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretJSON))

	if err := cmd.Run(); err != nil {
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if st, ok := exitErr.Sys().(syscall.WaitStatus); ok && st.ExitStatus() == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d",
				exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python program: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) arguments(req *pulumirpc.RunRequest, dir, entry string) []string {
	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()
	var args []string
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", dir)
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("organization", req.GetOrganization())
	args = append(args, entry)
	return append(args, req.GetArgs()...)
}
