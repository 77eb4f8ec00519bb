// vcsim for nsxkube's tests: govmomi's vCenter simulator with the inventory sizes and login
// taken from flags. govmomi's own vcsim command is a nested module that the Go module proxy
// does not serve, so the tests build this small main against the simulator library instead:
// as a module (programs/gomod/vcsim.go.mod.in, current govmomi) or, when the proxy cannot be
// reached, in GOPATH mode against Debian's golang-github-vmware-govmomi-dev (0.24.2). It uses
// only the simulator API that both versions have.
//
// On start it prints one line, `export GOVC_URL=<url> GOVC_SIM_PID=<pid>` (the URL carries the
// login when -username is set), then serves until SIGINT/SIGTERM (with -stdinexit also until
// stdin yields a byte or closes, so it ends with the test process that started it).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"

	// REST and extra SOAP endpoints: tagging and content library, storage policies, CNS, SSO.
	_ "github.com/vmware/govmomi/cns/simulator"
	_ "github.com/vmware/govmomi/lookup/simulator"
	_ "github.com/vmware/govmomi/pbm/simulator"
	_ "github.com/vmware/govmomi/sts/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator"
)

func main() {
	m := simulator.VPX()
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0: pick a free one)")
	flag.IntVar(&m.Datacenter, "dc", m.Datacenter, "datacenters")
	flag.IntVar(&m.Cluster, "cluster", m.Cluster, "clusters per datacenter")
	flag.IntVar(&m.ClusterHost, "host", m.ClusterHost, "hosts per cluster")
	flag.IntVar(&m.Host, "standalone-host", m.Host, "standalone hosts per datacenter")
	flag.IntVar(&m.Datastore, "ds", m.Datastore, "local datastores")
	flag.IntVar(&m.Machine, "vm", m.Machine, "virtual machines per resource pool")
	flag.IntVar(&m.Pool, "pool", m.Pool, "resource pools per compute resource")
	flag.IntVar(&m.Folder, "folder", m.Folder, "folders")
	flag.IntVar(&m.Portgroup, "pg", m.Portgroup, "distributed port groups")
	flag.IntVar(&m.OpaqueNetwork, "nsx", m.OpaqueNetwork, "NSX-backed opaque networks")
	user := flag.String("username", "", "login user (default: any login is accepted)")
	pass := flag.String("password", "", "login password (with -username); default $VCSIM_PASSWORD, which keeps it out of the process list")
	useTLS := flag.Bool("tls", true, "serve HTTPS (self-signed certificate)")
	stdinExit := flag.Bool("stdinexit", false, "exit when stdin yields a byte or closes")
	taskDelay := flag.String("task-delay", "", "slow tasks down: comma-separated TaskName=milliseconds (CloneVm=3000)")
	flag.Parse()
	if err := setTaskDelays(*taskDelay); err != nil {
		log.Fatal(err)
	}

	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	defer m.Remove()

	m.Service.RegisterEndpoints = true
	m.Service.Listen = &url.URL{Host: *listen}
	if *pass == "" {
		*pass = os.Getenv("VCSIM_PASSWORD")
	}
	if *user != "" {
		m.Service.Listen.User = url.UserPassword(*user, *pass)
	}
	if *useTLS {
		m.Service.TLS = new(tls.Config)
	}
	s := m.Service.NewServer()
	defer s.Close()
	// the address only: the password must not reach a log
	shown := *s.URL
	shown.User = nil
	fmt.Printf("export GOVC_URL=%s GOVC_SIM_PID=%d\n", shown.String(), os.Getpid())

	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	if *stdinExit {
		go func() {
			_, _ = os.Stdin.Read(make([]byte, 1))
			done <- syscall.SIGTERM
		}()
	}
	<-done
}

// setTaskDelays keeps each named task running for its milliseconds (the simulator's task names:
// CloneVm, PowerOnVm, ReconfigVm, Destroy…), so that a client can be stopped in the middle of one.
func setTaskDelays(spec string) error {
	if spec == "" {
		return nil
	}
	delays := map[string]int{}
	for _, item := range strings.Split(spec, ",") {
		name, value, found := strings.Cut(item, "=")
		ms, err := strconv.Atoi(value)
		if !found || name == "" || err != nil || ms < 0 {
			return fmt.Errorf("-task-delay %q: expected TaskName=milliseconds", item)
		}
		delays[name] = ms
	}
	simulator.TaskDelay.MethodDelay = delays
	return nil
}
