package messages

// AuditTarget names what a request acts on, for the broker's audit records
// (which never hold a request's secrets). Each returns the target (a
// connection id, else a provider) and the workspace the request named.

func (r ConnectionRef) AuditTarget() (string, string)          { return r.ConnectionID, r.WorkspaceID }
func (r TokenRequest) AuditTarget() (string, string)           { return r.ConnectionID, r.WorkspaceID }
func (r ConfirmRequest) AuditTarget() (string, string)         { return r.ConnectionID, r.WorkspaceID }
func (r ListConnectionsRequest) AuditTarget() (string, string) { return "", r.WorkspaceID }
func (r BeginRequest) AuditTarget() (string, string) {
	if r.ConnectionID != "" {
		return r.ConnectionID, r.WorkspaceID
	}
	return r.Provider, r.WorkspaceID
}
func (r VaultCreateConnection) AuditTarget() (string, string) {
	if r.ConnectionID != "" {
		return r.ConnectionID, r.WorkspaceID
	}
	return r.ProviderID, r.WorkspaceID
}
func (r VaultExchange) AuditTarget() (string, string)        { return r.ConnectionID, "" }
func (r VaultStoreStatic) AuditTarget() (string, string)     { return r.ConnectionID, "" }
func (r VaultFailConnection) AuditTarget() (string, string)  { return r.ConnectionID, "" }
func (r VaultClient) AuditTarget() (string, string)          { return r.ProviderID, "" }
func (r VaultClientRef) AuditTarget() (string, string)       { return r.ProviderID, "" }
func (r ProviderRef) AuditTarget() (string, string)          { return r.Provider, "" }
func (r VaultConnectionRef) AuditTarget() (string, string)   { return r.ConnectionID, r.WorkspaceID }
func (r VaultListConnections) AuditTarget() (string, string) { return "", r.WorkspaceID }
func (r ProviderUpdate) AuditTarget() (string, string)       { return r.Provider, "" }

// A Connection in a reply names the connection a request acted on: the one
// vault.connections.create made, which its request could not name yet.
func (c Connection) AuditTarget() (string, string) { return c.ConnectionID, c.WorkspaceID }

// AuditActor is the key id of the Gateway key a consent was begun with.
func (r VaultCreateConnection) AuditActor() string { return r.Actor }

// AuditActor is the key id of the operator's key admin asked for.
func (r VaultConnectionRef) AuditActor() string   { return r.Actor }
func (r VaultListConnections) AuditActor() string { return r.Actor }
