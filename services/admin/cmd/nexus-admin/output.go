package main

import (
	"encoding/json"
	"fmt"
)

// jsonOutput reads -o: table (the default) or json.
func jsonOutput(o string) (bool, error) {
	switch o {
	case "", "table":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("-o takes table or json, not %q", o)
}

// printJSON prints v as indented JSON.
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(b))
	return err
}
