// CoreDNS for nsxkube's lab nodes: upstream's coremain with only the plugins that kubeadm's
// default Corefile uses (cmd/kubeadm/app/phases/addons/dns/manifests.go, CoreDNSConfigMap),
// plus log, hosts and whoami for a lab or a test to answer from without an API server.
//
// Upstream's main (coredns.go) imports core/plugin, which links every plugin, and with them the
// cloud SDKs of route53, azure, clouddns … (hundreds of modules). This main imports only the
// plugins below (and what they import themselves: transfer, metadata, dnstap, debug) and keeps
// only the directives of the plugins that are linked, in upstream's order (which decides the
// order a query passes through them), so a Corefile naming any other plugin fails at once with
// "unknown directive" rather than at setup.
package main

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// kubeadm's Corefile: errors, health, ready, kubernetes, prometheus, forward, cache, loop,
	// reload, loadbalance.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"

	// Small, dependency-free extras.
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// Runs after the init of every imported package, where each plugin registered its directive.
func init() {
	linked := make([]string, 0, len(dnsserver.Directives))
	for _, name := range dnsserver.Directives {
		if _, err := caddy.DirectiveAction("dns", name); err == nil {
			linked = append(linked, name)
		}
	}
	dnsserver.Directives = linked
}

func main() {
	coremain.Run()
}
