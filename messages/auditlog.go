package messages

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// AuditListRequest is the body of admin.audit.list (operators), and of
// vault.audit.list (admin asks the vault for its part). Every filter is
// optional and they combine; records come newest first, a page at a time.
type AuditListRequest struct {
	// Since and Until bound the records' time: at or after Since, before
	// Until.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Principal is who asked: gateway, operator, handshake, admin, refresher.
	Principal string `json:"principal,omitempty"`
	// KeyID is a key's id (never the key): records of requests made with
	// it, or made by a service on its behalf (ActorKeyID).
	KeyID string `json:"key_id,omitempty"`
	// Target is a connection id, or a provider's id (or, for admin's
	// records, its name).
	Target      string `json:"target,omitempty"`
	WorkspaceID string `json:"workspace_id,omitempty"`
	// Action is a subject, relative to the prefix: v1.tokens.get,
	// v1.admin.providers.update, ...
	Action string `json:"action,omitempty"`
	// Limit is the page size: DefaultListLimit when 0, at most MaxListLimit.
	Limit int `json:"limit,omitempty"`
	// Cursor is the NextCursor of the previous page.
	Cursor string `json:"cursor,omitempty"`
}

// AuditListReply is one page of records, newest first; NextCursor is empty
// on the last page.
type AuditListReply struct {
	Records    []AuditRecord `json:"records"`
	NextCursor string        `json:"next_cursor"`
}

// AuditRecord says who asked the broker for what, and what came of it: a
// credential release, a consent, a revocation, a read of a connection, an
// operator's change to a provider. It never holds a secret nor a key.
type AuditRecord struct {
	ID string `json:"id"`
	// At is when the request came in (on admin's records, when the change
	// was made). Credential releases (v1.tokens.get) are counted rather
	// than recorded one by one: a record with Count n stands for n
	// identical requests (same caller, action, target, workspace and
	// outcome) from At to LastAt.
	At     time.Time `json:"at"`
	LastAt time.Time `json:"last_at"`
	Count  int64     `json:"count"`
	// Principal and KeyID are who presented which key. ActorKeyID is the
	// Gateway key a service acted for: the handshake creates a consent's
	// connection (v1.vault.connections.create) for the key that called
	// handshake.begin.
	Principal  string `json:"principal"`
	KeyID      string `json:"key_id"`
	ActorKeyID string `json:"actor_key_id,omitempty"`
	// Action is the subject asked, relative to the prefix.
	Action string `json:"action"`
	// Target is what the request named: a connection id, or a provider id
	// (ProviderName is the provider's name, on admin's records).
	Target       string `json:"target"`
	ProviderName string `json:"provider_name,omitempty"`
	WorkspaceID  string `json:"workspace_id,omitempty"`
	// Outcome is "ok", or the error code of the reply (forbidden,
	// not_found, ...).
	Outcome string `json:"outcome"`
	// Changed names the fields whose values an operator's change to a
	// provider changed (never the values; a new client secret shows as
	// "client_secret").
	Changed []string `json:"changed,omitempty"`
}

// OutcomeOK is the Outcome of a request that succeeded.
const OutcomeOK = "ok"

// Validate reports every problem of the request at once, as an
// invalid_request.
func (r AuditListRequest) Validate() error {
	var ps []string
	if r.Limit < 0 {
		ps = append(ps, "limit must not be negative")
	}
	if !r.Since.IsZero() && !r.Until.IsZero() && !r.Until.After(r.Since) {
		ps = append(ps, "until must be after since")
	}
	if _, _, ok := DecodeAuditCursor(r.Cursor); !ok {
		ps = append(ps, "cursor is not a cursor from a previous page")
	}
	if len(ps) > 0 {
		return Errorf(CodeInvalidRequest, "invalid audit list request: %s", strings.Join(ps, "; "))
	}
	return nil
}

// PageLimit is the page size the request asks for.
func (r AuditListRequest) PageLimit() int {
	switch {
	case r.Limit <= 0:
		return DefaultListLimit
	case r.Limit > MaxListLimit:
		return MaxListLimit
	}
	return r.Limit
}

// Audit cursors are the position of a page's last record in the order of
// every audit list (at, then id, both descending), versioned and
// base64url-encoded, so that the vault and admin page through their
// records alike, and admin through both at once. Callers pass NextCursor
// back as it is.
const auditCursorVersion = "a1:"

// EncodeAuditCursor is the cursor of the page that ends with the record at,
// id.
func EncodeAuditCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(auditCursorVersion + strconv.FormatInt(at.UnixMicro(), 10) + ":" + id))
}

// DecodeAuditCursor reads a cursor; the empty cursor is the first page
// (ok, with a zero at).
func DecodeAuditCursor(c string) (at time.Time, id string, ok bool) {
	if c == "" {
		return time.Time{}, "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", false
	}
	rest, ok := strings.CutPrefix(string(b), auditCursorVersion)
	if !ok {
		return time.Time{}, "", false
	}
	micros, id, ok := strings.Cut(rest, ":")
	n, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || !canonicalUUID(id) {
		return time.Time{}, "", false
	}
	return time.UnixMicro(n).UTC(), id, true
}

// canonicalUUID: record ids are UUIDs in their canonical text form
// (lowercase), so that comparing the text compares the ids as the
// databases order them.
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c < '0' || c > '9') && (c < 'a' || c > 'f'):
			return false
		}
	}
	return true
}

// AuditBefore reports whether record a comes before record b in an audit
// list: newer, or as new with the greater id.
func AuditBefore(a, b AuditRecord) bool {
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	return a.ID > b.ID
}
