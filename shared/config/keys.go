package config

// MinKeyLength is the shortest API or service key accepted.
const MinKeyLength = 16

// Keys reads a comma-separated list of keys (several during a rotation; the
// first is the one a service presents), each at least MinKeyLength
// characters. what says whose keys they are, for the problem reported when
// required keys are missing. No key's value ever appears in a problem.
func (l *Loader) Keys(name, what string, required bool) []string {
	keys := l.List(name, nil)
	if len(keys) == 0 {
		if required {
			l.Problem(name, "is required (%s; several, comma-separated, during a rotation)", what)
		}
		return nil
	}
	for _, k := range keys {
		if len(k) < MinKeyLength {
			l.Problem(name, "every key must be at least %d characters", MinKeyLength)
			break
		}
	}
	return keys
}

// The keys' variables. Each principal has its own; a key of one never
// opens another's doors.
const (
	// GatewayKeys: the Gateway's keys, on the contract's subjects.
	GatewayKeys = "API_KEY"
	// CrossWorkspaceKeys: Gateway keys that may omit workspace_id.
	CrossWorkspaceKeys = "CROSS_WORKSPACE_API_KEY"
	// OperatorKeys: the operators' keys, on admin's subjects and HTTP API.
	OperatorKeys = "ADMIN_API_KEY"
	// The services' keys, on each other's internal subjects.
	HandshakeServiceKeys = "HANDSHAKE_SERVICE_KEY"
	AdminServiceKeys     = "ADMIN_SERVICE_KEY"
	RefresherServiceKeys = "REFRESHER_SERVICE_KEY"
)
