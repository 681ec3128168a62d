package pg_test

import (
	"reflect"
	"testing"

	"github.com/nexus-broker/nexus/shared/pg"
)

func TestWhere(t *testing.T) {
	var w pg.Where
	if w.String() != "" {
		t.Fatalf("no conditions: %q", w.String())
	}
	w.Equal("a", "")
	w.Equal("b", "x")
	a := w.Arg(7)
	w.Add("(c = " + a + " or d = " + a + ")")
	if got := w.String(); got != " where b = $1 and (c = $2 or d = $2)" || !reflect.DeepEqual(w.Args, []any{"x", 7}) {
		t.Fatalf("%q %v", got, w.Args)
	}
	if page, more := pg.Page([]int{1, 2, 3}, 2); len(page) != 2 || !more {
		t.Fatalf("a full page: %v %v", page, more)
	}
	if page, more := pg.Page([]int{1, 2}, 2); len(page) != 2 || more {
		t.Fatalf("the last page: %v %v", page, more)
	}
}
