package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// connections list|get|revoke: the operators' view of connections, of
// every workspace unless -workspace names one.
func (c *cli) connections(ctx context.Context, fs *flag.FlagSet, args []string) error {
	workspace := fs.String("workspace", "", "only this workspace's connections")
	provider := fs.String("provider", "", "list: only this provider's (id, name or alias)")
	status := fs.String("status", "", "list: only connections in this status (pending, active, attention_required, revoked, failed, expired)")
	limit := fs.Int("limit", 0, "list: page size (default 50, at most 500)")
	cursor := fs.String("cursor", "", "list: next_cursor of the previous page")
	output := fs.String("o", "table", "table or json")
	httpURL := fs.String("http", "", "admin's HTTP API (http://127.0.0.1:8081) instead of NATS")
	rest, err := parseAll(fs, args, -1)
	if err != nil {
		return err
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch {
	case sub == "list" && len(rest) == 1:
		req := messages.ListConnectionsRequest{WorkspaceID: *workspace, Provider: *provider, Status: messages.ConnectionStatus(*status), Limit: *limit, Cursor: *cursor}
		return c.withAPI(*httpURL, func(a api) error {
			page, err := a.listConnections(ctx, req)
			if err != nil {
				return err
			}
			if asJSON {
				return c.printJSON(page)
			}
			return c.printConnections(page.Connections, page.NextCursor)
		})
	case (sub == "get" || sub == "revoke") && len(rest) == 2:
		if *provider != "" || *status != "" || *limit != 0 || *cursor != "" {
			return fmt.Errorf("connections %s takes -workspace only, of the filters", sub)
		}
		ref := messages.ConnectionRef{ConnectionID: rest[1], WorkspaceID: *workspace}
		return c.withAPI(*httpURL, func(a api) error {
			call := a.getConnection
			if sub == "revoke" {
				call = a.revokeConnection
			}
			conn, err := call(ctx, ref)
			if err != nil {
				return err
			}
			if asJSON {
				return c.printJSON(conn)
			}
			return c.printConnections([]messages.Connection{conn}, "")
		})
	}
	return errors.New("connections takes list, get ID or revoke ID")
}

func (c *cli) printConnections(conns []messages.Connection, next string) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tPROVIDER\tWORKSPACE\tSTATUS\tSCOPES\tUPDATED\tEXPIRES\tWHY")
	for _, conn := range conns {
		why := "-"
		for _, a := range []*messages.Attention{conn.Attention, conn.Failure} {
			if a != nil {
				why = a.Code
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", conn.ConnectionID, conn.Provider, conn.WorkspaceID, conn.Status,
			dash(strings.Join(conn.Scopes, " ")), conn.UpdatedAt.UTC().Format(tableTime), optionalTime(conn.ExpiresAt), why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		_, err := fmt.Fprintf(c.stdout, "more: the same command with -cursor %s\n", next)
		return err
	}
	return nil
}

func optionalTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(tableTime)
}
