package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// audit lists audit records (GET /v1/audit): a table, or the reply as JSON.
func (c *cli) audit(ctx context.Context, fs *flag.FlagSet, args []string) error {
	q := url.Values{}
	filters := []struct{ flag, param, usage string }{
		{"since", "since", "records at or after this time: RFC 3339, or a duration before now (1h, 30m)"},
		{"until", "until", "records before this time (as -since)"},
		{"principal", "principal", "who asked: gateway, operator, handshake, admin or refresher"},
		{"key-id", "key_id", "a key's id, as records show it: requests made with it, or on its behalf"},
		{"target", "target", "a connection id, or a provider's id or name"},
		{"workspace", "workspace_id", "a workspace id"},
		{"action", "action", "a subject, such as v1.tokens.get or v1.admin.providers.update"},
		{"cursor", "cursor", "next_cursor of the previous page"},
	}
	values := make([]*string, len(filters))
	for i, f := range filters {
		values[i] = fs.String(f.flag, "", f.usage)
	}
	limit := fs.Int("limit", 0, "page size (default 50, at most 500)")
	asJSON := fs.Bool("json", false, "print the reply as JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit takes flags only, not %q", fs.Arg(0))
	}
	now := time.Now()
	for i, f := range filters {
		v := *values[i]
		if v == "" {
			continue
		}
		if f.param == "since" || f.param == "until" {
			t, err := when(v, now)
			if err != nil {
				return fmt.Errorf("-%s: %w", f.flag, err)
			}
			v = t
		}
		q.Set(f.param, v)
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if *asJSON {
		return c.do(ctx, http.MethodGet, path, "", nil)
	}
	data, err := c.fetch(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	var page messages.AuditListReply
	if err := json.Unmarshal(data, &page); err != nil {
		return fmt.Errorf("the audit reply: %w", err)
	}
	return printAudit(c, page)
}

// when reads an RFC 3339 time, or a duration before now.
func when(v string, now time.Time) (string, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return "", fmt.Errorf("%q: a duration before now must not be negative", v)
		}
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return "", fmt.Errorf("%q is neither an RFC 3339 time (2030-01-02T15:04:05Z) nor a duration (1h)", v)
	}
	return v, nil
}

// printAudit prints a page as a table, and how to ask for the next.
func printAudit(c *cli, page messages.AuditListReply) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tCOUNT\tPRINCIPAL\tKEY ID\tACTION\tTARGET\tWORKSPACE\tOUTCOME\tDETAIL")
	for _, r := range page.Records {
		var detail []string
		if r.ProviderName != "" {
			detail = append(detail, "provider "+r.ProviderName)
		}
		if len(r.Changed) > 0 {
			detail = append(detail, "changed "+strings.Join(r.Changed, ","))
		}
		if r.ActorKeyID != "" {
			detail = append(detail, "for key "+r.ActorKeyID)
		}
		if r.Count > 1 {
			detail = append(detail, "until "+r.LastAt.UTC().Format(tableTime))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.UTC().Format(tableTime), r.Count, dash(r.Principal), dash(r.KeyID),
			r.Action, dash(r.Target), dash(r.WorkspaceID), r.Outcome, strings.Join(detail, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		_, err := fmt.Fprintf(c.stdout, "more: the same command with -cursor %s\n", page.NextCursor)
		return err
	}
	return nil
}

const tableTime = "2006-01-02T15:04:05.000Z"

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
