package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// keys status: what the vault has sealed under each encryption key.
func (c *cli) keys(ctx context.Context, fs *flag.FlagSet, args []string) error {
	output := fs.String("o", "table", "table or json")
	httpURL := fs.String("http", "", "admin's HTTP API (http://127.0.0.1:8081) instead of NATS")
	rest, err := parseAll(fs, args, 1)
	if err != nil || rest[0] != "status" {
		return errors.Join(err, errors.New("keys takes one subcommand: status"))
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	return c.withAPI(*httpURL, func(a api) error {
		st, err := a.keysStatus(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return c.printJSON(st)
		}
		return c.printKeys(st)
	})
}

func (c *cli) printKeys(st messages.KeysStatus) error {
	fmt.Fprintf(c.stdout, "newest key %s, canary under %s, rows in an older format %d, rotation complete: %v\n",
		dash(st.NewestKeyID), dash(st.CanaryKeyID), st.OlderFormatRows, st.RotationComplete)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tACTIVATED\tROWS\tSEALS")
	for _, k := range st.Keys {
		var seals []string
		for _, col := range slices.Sorted(maps.Keys(k.Rows)) {
			seals = append(seals, fmt.Sprintf("%s %d", col, k.Rows[col]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", k.KeyID, optionalTime(k.ActivatedAt), k.Total, dash(strings.Join(seals, ", ")))
	}
	fmt.Fprintln(tw, "\nVAULT\tSEALS WITH\tHOLDS\tSEEN")
	for _, r := range st.Replicas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.SealingKeyID, strings.Join(r.KeyIDs, ","), r.SeenAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
