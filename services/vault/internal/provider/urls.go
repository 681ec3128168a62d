package provider

import (
	"fmt"

	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
)

// CheckURL applies the rule every provider URL follows
// (discovery.CheckEndpoint: https, or http when private, the
// PROVIDER_PRIVATE_NETWORKS, lists any; a host written as an address must
// be one the egress guard connects to).
func CheckURL(raw string, private egress.Networks) error {
	if err := discovery.CheckEndpoint(raw, private); err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	return nil
}
