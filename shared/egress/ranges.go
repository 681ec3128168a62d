package egress

import (
	"net/netip"
)

// A refused range and how an operator is told about it.
type special struct {
	prefix netip.Prefix
	what   string
}

func ranges(what string, prefixes ...string) []special {
	out := make([]special, len(prefixes))
	for i, p := range prefixes {
		out[i] = special{netip.MustParsePrefix(p), what}
	}
	return out
}

// refused4 are the IPv4 ranges no provider is reached at unless listed: the
// IANA special-purpose registry (RFC 6890 and its updates) without the
// globally reachable entries, plus multicast and the reserved class E.
var refused4 = concat(
	ranges("an unspecified (\"this network\") address", "0.0.0.0/8"),
	ranges("a private address (RFC 1918)", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
	ranges("a shared address (100.64.0.0/10, carrier-grade NAT)", "100.64.0.0/10"),
	ranges("a loopback address", "127.0.0.0/8"),
	ranges("a link-local address", "169.254.0.0/16"),
	ranges("an IETF protocol assignment address (192.0.0.0/24)", "192.0.0.0/24"),
	ranges("a documentation address", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
	ranges("a 6to4 relay anycast address", "192.88.99.0/24"),
	ranges("a benchmarking address (198.18.0.0/15)", "198.18.0.0/15"),
	ranges("a multicast address", "224.0.0.0/4"),
	ranges("a reserved address (240.0.0.0/4)", "240.0.0.0/4"),
)

// refused6 are the IPv6 ranges refused inside 2000::/3, the global unicast
// space, and the named ranges outside it; everything else outside 2000::/3
// is refused as reserved. IPv4-mapped addresses are checked as IPv4 and
// NAT64 addresses by the IPv4 address they embed (classify).
var refused6 = concat(
	ranges("an unspecified address", "::/128"),
	ranges("a loopback address", "::1/128"),
	ranges("a discard-only address (100::/64)", "100::/64"),
	ranges("a local-use NAT64 address (64:ff9b:1::/48)", "64:ff9b:1::/48"),
	ranges("an IETF protocol assignment address (2001::/23: Teredo, benchmarking, ORCHID)", "2001::/23"),
	ranges("a documentation address", "2001:db8::/32", "3fff::/20"),
	ranges("a 6to4 address (2002::/16, which embeds an IPv4 address)", "2002::/16"),
	ranges("an SRv6 segment identifier (5f00::/16)", "5f00::/16"),
	ranges("a unique local address (fc00::/7)", "fc00::/7"),
	ranges("a link-local address", "fe80::/10"),
	ranges("a site-local address (fec0::/10)", "fec0::/10"),
	ranges("a multicast address", "ff00::/8"),
)

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
)

// metadata are the cloud instance-metadata endpoints: they hand out the
// machine's own credentials to whoever asks. Each also lies in a refused
// range; a listed network that merely contains one does not open it
// (Networks.allows).
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack, ...
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task credentials
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS pod identity
	netip.MustParseAddr("169.254.0.23"),    // Tencent Cloud
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud (classic)
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS pod identity over IPv6
}

func concat(lists ...[]special) []special {
	var out []special
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// normalize drops an IPv6 zone and turns an IPv4-mapped IPv6 address
// (::ffff:10.0.0.5) into the IPv4 address it is: both reach the same host.
func normalize(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

// isMetadata reports whether a (normalized) is a cloud metadata address.
func isMetadata(a netip.Addr) bool {
	for _, m := range metadata {
		if a == m {
			return true
		}
	}
	return false
}

// classify says what kind of refused address a (normalized) is, or "" for
// an address on the public internet.
func classify(a netip.Addr) string {
	if isMetadata(a) {
		return "a cloud metadata address"
	}
	if a.Is4() {
		for _, s := range refused4 {
			if s.prefix.Contains(a) {
				return s.what
			}
		}
		return ""
	}
	if nat64.Contains(a) {
		// 64:ff9b::a00:5 reaches 10.0.0.5 through the network's NAT64
		// gateway: judge it by that address.
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if what := classify(v4); what != "" {
			return "a NAT64 address of " + v4.String() + ", " + what
		}
		return ""
	}
	for _, s := range refused6 {
		if s.prefix.Contains(a) {
			return s.what
		}
	}
	if !globalUnicast6.Contains(a) {
		return "a reserved address (outside 2000::/3, the global unicast range)"
	}
	return ""
}

// covered reports whether every address of p lies in a refused range, so
// that listing it opens nothing on the public internet.
func covered(p netip.Prefix) bool {
	list := refused6
	if p.Addr().Is4() {
		list = refused4
	}
	for _, s := range list {
		if s.prefix.Bits() <= p.Bits() && s.prefix.Contains(p.Addr()) {
			return true
		}
	}
	// Outside 2000::/3 everything is refused: a prefix inside 2000::/3's
	// complement is covered when it does not overlap 2000::/3 (and is not
	// NAT64, whose addresses are judged by the IPv4 they embed).
	return p.Addr().Is6() && !p.Overlaps(globalUnicast6) && !p.Overlaps(nat64)
}
