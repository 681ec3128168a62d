package provider

import (
	"fmt"

	"github.com/nexus-broker/nexus/shared/discovery"
)

// CheckURL applies the rule every provider URL follows
// (discovery.CheckEndpoint: https, or http on loopback hosts).
func CheckURL(raw string) error {
	if err := discovery.CheckEndpoint(raw); err != nil {
		return fmt.Errorf("%q %w", raw, err)
	}
	return nil
}
