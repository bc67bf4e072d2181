package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

// A stand-in for the exec shim, run by /bin/sh as the "python": it waits until stopped, unless QUICK is set.
const shimScript = "[ -n \"${QUICK:-}\" ] && exit 0\nexec sleep 30\n"

func testHost(t *testing.T) (*host, *pulumirpc.RunRequest) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "shim")
	if err := os.WriteFile(shim, []byte(shimScript), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PULUMI_PYTHON_CMD", "/bin/sh")
	req := &pulumirpc.RunRequest{Info: &pulumirpc.ProgramInfo{RootDirectory: dir, ProgramDirectory: dir, EntryPoint: "."}}
	return &host{exec: shim, running: map[*program]struct{}{}}, req
}

func waitRunning(t *testing.T, h *host) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		n := len(h.running)
		h.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the program never started")
}

func TestCancelStopsTheRunningProgramOnly(t *testing.T) {
	h, req := testHost(t)
	done := make(chan *pulumirpc.RunResponse, 1)
	go func() {
		resp, err := h.Run(context.Background(), req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	waitRunning(t, h)
	if _, err := h.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-done:
		if resp.GetError() == "" {
			t.Fatal("a cancelled program reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Cancel did not stop the running program")
	}

	t.Setenv("QUICK", "1")
	resp, err := h.Run(context.Background(), req)
	if err != nil || resp.GetError() != "" {
		t.Fatalf("a Run after Cancel failed: %v %q", err, resp.GetError())
	}
}

func TestRunRefusesWhatItDoesNotSupport(t *testing.T) {
	h, req := testHost(t)
	req.AttachDebugger = true
	if resp, _ := h.Run(context.Background(), req); resp.GetError() == "" {
		t.Fatal("attaching a debugger was accepted")
	}
	req.AttachDebugger = false
	req.Info.EntryPoint = "missing.py"
	if resp, _ := h.Run(context.Background(), req); resp.GetError() == "" {
		t.Fatal("a missing entry point was accepted")
	}
}
