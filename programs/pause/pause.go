// pause: the sandbox ("infra") container of every Pod in the test nodes' images.
//
// It holds the Pod's namespaces open and does nothing else: it waits for a signal, reaps the
// children it inherits when the Pod shares one PID namespace, and exits 0 on SIGINT or SIGTERM.
// Built statically (CGO_ENABLED=0) by tests/nodes/images and tagged with the pause name and
// version that `kubeadm config images list` prints. Only the Go standard library is used.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (nsxkube tests)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: shutting down, got signal %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
