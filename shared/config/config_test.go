package config

import (
	"strings"
	"testing"
)

func TestLoaderReportsEveryProblem(t *testing.T) {
	l := FromMap(map[string]string{"ENCRYPTION_KEY": "c2hvcnQ=", "API_KEY": "short-key-value"})
	l.Key32("ENCRYPTION_KEY")
	l.Key32("STATE_KEY")
	l.Required("DATABASE_URL", "PostgreSQL")
	l.Common(":0")
	l.Keys(GatewayKeys, "the Gateway's keys", true)
	l.Keys(OperatorKeys, "the operators' keys", true)
	err := l.Err()
	if err == nil {
		t.Fatal("no error for a bad configuration")
	}
	for _, name := range []string{"ENCRYPTION_KEY", "STATE_KEY", "DATABASE_URL", "API_KEY", "ADMIN_API_KEY"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "c2hvcnQ=") || strings.Contains(err.Error(), "short-key-value") {
		t.Error("the error shows a key's value")
	}
}
