package pg

import (
	"strconv"
	"strings"
)

// Where builds the conditions of a query whose filters are optional,
// numbering its arguments ($1, $2, ...) as they are added.
type Where struct {
	conds []string
	// Args are the query's arguments, in placeholder order.
	Args []any
}

// Arg adds v as an argument and returns its placeholder.
func (w *Where) Arg(v any) string {
	w.Args = append(w.Args, v)
	return "$" + strconv.Itoa(len(w.Args))
}

// Add adds a condition, written with placeholders from Arg.
func (w *Where) Add(cond string) { w.conds = append(w.conds, cond) }

// Equal adds "col = v" unless v is "".
func (w *Where) Equal(col, v string) {
	if v != "" {
		w.Add(col + " = " + w.Arg(v))
	}
}

// String is " where c1 and c2 ...", or "" without conditions.
func (w *Where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " where " + strings.Join(w.conds, " and ")
}

// Page splits rows read with "limit limit+1" into the page and whether
// more follow.
func Page[T any](rows []T, limit int) ([]T, bool) {
	if len(rows) > limit {
		return rows[:limit], true
	}
	return rows, false
}
