package messages

import (
	"reflect"
	"testing"
)

// TestQuirksIsZero: every field of Quirks, set alone, makes it non-zero,
// so a field added to Quirks and forgotten in IsZero fails here (admin
// would otherwise drop a document that sets only that field).
func TestQuirksIsZero(t *testing.T) {
	if !(Quirks{}).IsZero() || !(Quirks{PermanentErrors: []string{}, ConfigFromToken: map[string]string{}}).IsZero() {
		t.Fatal("empty quirks are not zero")
	}
	typ := reflect.TypeFor[Quirks]()
	for i := range typ.NumField() {
		var q Quirks
		f := reflect.ValueOf(&q).Elem().Field(i)
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
			f.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int:
			f.SetInt(1)
		default:
			t.Fatalf("field %s: kind %s not covered by this test", typ.Field(i).Name, f.Kind())
		}
		if q.IsZero() {
			t.Errorf("Quirks with only %s set is zero", typ.Field(i).Name)
		}
	}
}
