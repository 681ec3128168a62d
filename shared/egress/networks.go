package egress

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nexus-broker/nexus/shared/config"
)

// Variable is the environment variable admin, the handshake and the vault
// read their Networks from.
const Variable = "PROVIDER_PRIVATE_NETWORKS"

// Networks are the address ranges an operator opens to provider URLs
// although the guard refuses them by default (PROVIDER_PRIVATE_NETWORKS):
// an identity provider inside the company network, or loopback for local
// development. Plain http goes only to addresses in these networks.
type Networks []netip.Prefix

// ParseNetworks reads a comma-separated list of CIDRs ("10.20.0.0/16,
// fd12:3456::/48"); a bare address is the network of that address alone.
// Every entry must lie inside the ranges the guard refuses: a public
// network needs no entry, and listing one would let plain http reach it.
// It returns the networks that are valid and one error per invalid entry.
func ParseNetworks(list string) (Networks, []error) {
	var (
		out  Networks
		errs []error
	)
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		p, err := parseNetwork(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errs
}

func parseNetwork(raw string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(raw, "/") {
		var err error
		if p, err = netip.ParsePrefix(raw); err != nil {
			return p, fmt.Errorf("%q is not a CIDR network such as 10.20.0.0/16 or fd12:3456::/48", raw)
		}
	} else {
		a, err := netip.ParseAddr(raw)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%q is not a CIDR network such as 10.20.0.0/16 or fd12:3456::/48", raw)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return p, fmt.Errorf("%q has bits set past its prefix length: write %s for the network, or %s/%d for the one address",
			raw, m, p.Addr(), p.Addr().BitLen())
	}
	if !covered(p) {
		return p, fmt.Errorf("%s includes public addresses, which the guard does not refuse (they need no entry, and an entry would allow plain http to them); list only private, loopback, link-local or other non-public networks", p)
	}
	return p, nil
}

// Load reads PROVIDER_PRIVATE_NETWORKS (empty by default), reporting every
// invalid entry with l's other problems.
func Load(l *config.Loader) Networks {
	n, errs := ParseNetworks(l.String(Variable, ""))
	for _, err := range errs {
		l.Problem(Variable, "%v", err)
	}
	return n
}

// String is the list as PROVIDER_PRIVATE_NETWORKS writes it.
func (n Networks) String() string {
	s := make([]string, len(n))
	for i, p := range n {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Contains reports whether a lies in one of the networks.
func (n Networks) Contains(a netip.Addr) bool {
	a = normalize(a)
	for _, p := range n {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allows reports whether the networks open a (normalized). A cloud metadata
// address is opened only by an entry naming it alone: listing a whole
// link-local or unique local range must not hand out the machine's own
// credentials.
func (n Networks) allows(a netip.Addr) bool {
	if !isMetadata(a) && !nat64LocalMetadata(a) {
		return n.Contains(a)
	}
	for _, p := range n {
		if p.IsSingleIP() && p.Addr() == a {
			return true
		}
	}
	return false
}

// Check says whether a connection to a, which host (as the URL names it)
// resolved to, may be made: nil, or a *RefusedError. plainHTTP: the
// request is http, which goes only to the listed networks.
func (n Networks) Check(host string, a netip.Addr, plainHTTP bool) error {
	a = normalize(a)
	what := classify(a)
	if n.allows(a) {
		return nil
	}
	if what == "" && !plainHTTP {
		return nil
	}
	return &RefusedError{Host: host, Addr: a, What: what, PlainHTTP: plainHTTP}
}

// nat64Local is the local-use NAT64 prefix (RFC 8215), which may be listed.
var nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")

// nat64LocalMetadata reports whether a, in the local-use NAT64 prefix,
// embeds a cloud metadata IPv4 address, in either of the layouts a network
// may use inside it (RFC 6052: a /96 prefix, the address in the last 32
// bits; a /48 prefix, the address around the reserved octet): listing the
// prefix must not open the metadata endpoints through the NAT64 gateway.
func nat64LocalMetadata(a netip.Addr) bool {
	if !nat64Local.Contains(a) {
		return false
	}
	b := a.As16()
	return isMetadata(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})) ||
		isMetadata(netip.AddrFrom4([4]byte{b[6], b[7], b[9], b[10]}))
}
